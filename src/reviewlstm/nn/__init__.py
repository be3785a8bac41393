"""The network: the rating model (model.py: embed, run from embeddings, pool, head, gates on
request), word vectors (embeddings.py), the n-gram path beside it (ngrams.py), the recurrent layer
(layers.py), the three cells one readable file each (cells/), and the four-gate cell's fast path
(fourgate/, entered only through `fourgate.run` and `fourgate.warm_up`).

Within: model -> ngrams, embeddings -> layers -> cells -> fourgate. May import io/ and the settings.
"""
