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

CORPORA = ("csv", "emodb", "fau-aibo", "ravdess", "iemocap", "msp-podcast", "crema-d")
# Manifest columns of the dimensional ratings, named alike in every recipe that has them.
DIMENSIONS = ("arousal", "valence", "dominance")

ACTIVATIONS = ("tanh", "relu")

# The utterance poolings of the attention LSTM and of the basic LSTM are registered in serattn.poolings.
# How the "+functionals" poolings standardize their functionals: batch normalization or per speaker.
FUNCTIONALS_NORMS = ("batch", "speaker")

# Static scikit-learn models (serattn.training.static) and their hyper-parameters.
STATIC_MODELS = ("linear-svm", "rbf-svm", "logreg", "mlp")
FRAME_POOLS = ("none", "mean")  # train_static.py --pool: what a static model does with frame-level input
CALIBRATIONS = ("auto", "sigmoid", "isotonic")

# Hyper-parameter grids searched by default, per model (values for z-normalized inputs).
DEFAULT_GRIDS = {
    "linear-svm": {"C": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]},
    "rbf-svm": {"C": [0.1, 1.0, 10.0, 100.0], "gamma": ["scale"]},
    "logreg": {"C": [1e-4, 1e-3, 1e-2, 1e-1, 1.0]},
    "mlp": {"alpha": [1e-3, 1e-2, 1e-1, 1.0, 10.0]},
}
TUNABLE = {
    "linear-svm": ("C",),
    "rbf-svm": ("C", "gamma"),
    "logreg": ("C",),
    "mlp": ("alpha", "learning_rate_init"),
}

# Keys of an .npz feature set (see serattn.features.feature_set).
FEATURE_FILE_VERSION = 2  # 2: optional source_ids of augmented copies
