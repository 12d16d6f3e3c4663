"""The registry of static models: scikit-learn classifiers on utterance functionals.

One :class:`StaticModel` per ``train_static.py --model`` value says which estimator it
is, how it is constructed, which hyper-parameters ``--grid`` may tune and the grid
searched by default. ``train_static.py``, :class:`serattn.config.StaticModelConfig`,
:meth:`serattn.experiment.Experiment.from_dict`, ``search.py`` and
:func:`serattn.training.static.build_classifier` all read :data:`STATIC_MODELS`, so a
new model is one :func:`register` call. No scikit-learn import here (the estimator is
named by its import path): the configs check flags with it before any data is read.
"""

from dataclasses import dataclass, field

from serattn.errors import InputError


@dataclass(frozen=True)
class StaticModel:
    """One static model.

    Attributes:
        name: the ``--model`` value.
        estimator: import path of the scikit-learn classifier class.
        grid: hyper-parameter -> values searched by default (for z-normalized inputs).
        tunable: what ``--grid`` may set; by default the names of ``grid``.
        options: constructor arguments fixed for this model.
        max_iter: the default ``--max-iter``.
        iterations: the constructor argument ``--max-iter`` goes to, or None where the
            solver runs to convergence (the RBF SVM).
        hidden: takes ``--hidden`` (the MLP's hidden layer sizes).
        calibration: how ``--calibration auto`` turns its scores into probabilities:
            ``"sigmoid"`` (Platt) for a model without ``predict_proba``, None for its own.
    """

    name: str
    estimator: str
    grid: dict[str, list]
    tunable: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)
    max_iter: int = 10_000
    iterations: str | None = "max_iter"
    hidden: bool = False
    calibration: str | None = None

    def __post_init__(self):
        if not self.tunable:
            object.__setattr__(self, "tunable", tuple(self.grid))


STATIC_MODELS: dict[str, StaticModel] = {}


def register(model: StaticModel) -> StaticModel:
    """Add ``model`` to :data:`STATIC_MODELS` (the CLI lists them in registration order)."""
    if model.name in STATIC_MODELS:
        raise ValueError(f"static model '{model.name}' is registered twice")
    if not set(model.grid) <= set(model.tunable):
        raise ValueError(f"static model '{model.name}': its default grid tunes what it does not list as tunable")
    STATIC_MODELS[model.name] = model
    return model


register(StaticModel("linear-svm", "sklearn.svm.LinearSVC", {"C": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]},
                     options={"dual": "auto"}, calibration="sigmoid"))
register(StaticModel("rbf-svm", "sklearn.svm.SVC", {"C": [0.1, 1.0, 10.0, 100.0], "gamma": ["scale"]},
                     options={"kernel": "rbf", "max_iter": -1}, iterations=None, calibration="sigmoid"))
register(StaticModel("logreg", "sklearn.linear_model.LogisticRegression", {"C": [1e-4, 1e-3, 1e-2, 1e-1, 1.0]}))
register(StaticModel("mlp", "sklearn.neural_network.MLPClassifier", {"alpha": [1e-3, 1e-2, 1e-1, 1.0, 10.0]},
                     tunable=("alpha", "learning_rate_init"), max_iter=300, hidden=True))


def static_model(name: str) -> StaticModel:
    """The registered model ``name``; InputError naming the choices otherwise."""
    if name not in STATIC_MODELS:
        raise InputError(f"unknown model '{name}'; expected one of: {', '.join(STATIC_MODELS)}")
    return STATIC_MODELS[name]
