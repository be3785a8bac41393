"""Distillation: a transformer teacher fine-tuned on the rated reviews (teacher.py), its labels for
every review, rated or not, and the student trained on them (distill.py), beside the linear peers
the ensemble teacher mixes in (baseline.py: TF-IDF + logistic regression, NBSVM).

May import training/, inference/, nn/, io/ and the settings; imported by the facade and the surfaces.
"""
