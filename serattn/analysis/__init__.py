"""Analysis: UA, WA and confusion matrices (``metrics``); attention slot profiles and cue
mass (``attention``); t-SNE maps and class separation of the representations
(``representations``). numpy and scikit-learn only: the figure scripts never load TensorFlow."""
