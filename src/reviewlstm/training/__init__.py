"""Training: a rating model from rated reviews (train.py: read, build, fit, finish), the loop's
shared parts (loop.py: optimizer, selection, cross-fitting; batching.py; checkpoint.py;
distributed.py for torchrun), the teacher-labelled transfer set (transfer.py), language-model
pretraining (pretrain.py) and the vanishing-gradient study (gradients.py).

May import inference/, nn/, io/ and the settings; imported by distillation/, the facade and the surfaces.
"""
