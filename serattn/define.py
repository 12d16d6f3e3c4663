"""Names shared across the package: class sets, colors, feature sets, corpora.

Kept in one place (as opensmile's ``define`` module does) so that a class order
or a color is never re-typed in a script.
"""

# The FAU Aibo 5-class problem of the Interspeech 2009 Emotion Challenge, in the
# order of the published confusion matrix.
FAU_CLASSES = ("A", "E", "N", "P", "R")
FAU_CLASS_NAMES = {
    "A": "angry",
    "E": "emphatic",
    "N": "neutral",
    "P": "positive",
    "R": "rest",
}

# Published figure colors (red angry, green emphatic, blue neutral, yellow
# positive, cyan rest). Classes of other corpora get colors from PALETTE.
CLASS_COLORS = {
    "A": "red",
    "E": "green",
    "N": "blue",
    "P": "yellow",
    "R": "cyan",
}
PALETTE = (
    "tab:red", "tab:green", "tab:blue", "gold", "tab:cyan",
    "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:gray",
)

SAMPLE_RATE = 16_000  # Hz; every wav is resampled to this before extraction
FRAME_RATE = 100  # frames per second of the IS09 low-level descriptors

# Our feature-set names -> (openSMILE feature set, whether it has delta LLDs).
# eGeMAPS has no delta level (opensmile 2.6 crashes when asked for one).
OPENSMILE_SETS = {
    "is09": ("IS09", True),
    "egemaps": ("eGeMAPSv02", False),
    "compare": ("ComParE_2016", True),
}
FEATURE_SETS = tuple(OPENSMILE_SETS)
DEFAULT_FEATURE_SET = "is09"
FEATURE_LEVELS = ("lld", "functionals")

# The corpus recipes (extract_features.py --corpus) are registered in serattn.features.corpora (RECIPES).
# Manifest columns of the dimensional ratings, named alike in every recipe that has them.
DIMENSIONS = ("arousal", "valence", "dominance")

ACTIVATIONS = ("tanh", "relu")

# The utterance poolings of the attention LSTM and of the basic LSTM are registered in serattn.poolings.
# How the "+functionals" poolings standardize their functionals: batch normalization or per speaker.
FUNCTIONALS_NORMS = ("batch", "speaker")
# How their classifier weighs the functionals: trained with the network, or a logistic regression fitted to
# each training set first (serattn.training.functionals_fit), which the network's logits add to.
FUNCTIONALS_FITS = ("joint", "logreg")

# Static scikit-learn models are registered in serattn.static_models.
FRAME_POOLS = ("none", "mean")  # train_static.py --pool: what a static model does with frame-level input
CALIBRATIONS = ("auto", "sigmoid", "isotonic")

# Keys of an .npz feature set (see serattn.features.feature_set).
FEATURE_FILE_VERSION = 2  # 2: optional source_ids of augmented copies
