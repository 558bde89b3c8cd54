"""The lab: training the linear tagger and measuring label quality.

Never imported at run time (segmenting, tagging, replay, serving): only by
``scripts/train_tagger.py``, the tests, and lazily by ``tracestop tag --report``.

- ``labels``: the hand labels, extra labels and weak labels as training examples;
- ``train``: fitting the three heads and writing the ``.npz`` weights (scikit-learn);
- ``quality``: grouped cross-validation of a tagger.
"""
