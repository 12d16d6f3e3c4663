"""Analysis: UA, WA and confusion matrices (``metrics``); attention slot profiles and cue
mass (``attention``). numpy only: the figure scripts never load TensorFlow."""
