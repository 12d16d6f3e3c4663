"""The registry of pooling variants: how an LSTM's frames become one utterance vector.

One :class:`Pooling` per variant says which model it belongs to and which flags it takes;
``train_attention_lstm.py --pooling``, :class:`serattn.config.ModelConfig`, the model
builders, the analysis model and the trainer's fast path all read :data:`POOLINGS`, so a
variant is one entry here plus its head in :mod:`serattn.models.pooling` (registered with
``@head``). No TensorFlow here: :mod:`serattn.config` checks the flags with it before any
data is read.
"""

from dataclasses import dataclass

from serattn.errors import InputError

ATTENTION_LSTM = "attention-lstm"
BASIC_LSTM = "basic-lstm"


@dataclass(frozen=True)
class Pooling:
    """One pooling variant and its constraints.

    Attributes:
        name: the ``--pooling`` value.
        model: the model that has it, ``"attention-lstm"`` or ``"basic-lstm"``.
        needs_mask: refused with ``--no-mask`` (only the published ``attention`` can see padding).
        heads: takes ``--heads H`` > 1.
        functionals: the classifier also sees the functionals of the input frames, which
            ``--functionals-norm speaker`` can standardize per speaker.
        pool_inputs: takes ``--pool-inputs``.
        weights: the layer the analysis model reads the attention over frames from:
            ``"attention_weights"``, ``"attention_heads"`` (their mean over heads), or None
            (uniform weights over the valid frames, as mean pooling gives).
        published: the published head (attention LSTM) or the basic LSTM's, which
            :func:`serattn.training.trainer.trainer_for` can rewire on an unmasked LSTM.
        layer: the class of its ``attention_representation`` layer.
        default: the model's pooling when ``--pooling`` is not given.
        scores: what the attention scores: ``"outputs"`` (the LSTM outputs) or ``"frames"``
            (the input frames next to them; the head is then given the frames).
        per_class: one head per class, each class's score read from its own pooled vector
            (categorical targets only; the attention of an utterance is its predicted class's).
        output: the class of its ``output`` layer when not the published softmax (``ClasswiseOutput``
            for ``per_class``).
    """

    name: str
    model: str
    layer: str
    needs_mask: bool = True
    heads: bool = False
    functionals: bool = False
    pool_inputs: bool = True
    weights: str | None = "attention_weights"
    published: bool = False
    default: bool = False
    scores: str = "outputs"
    per_class: bool = False
    output: str = ""


POOLINGS: dict[str, Pooling] = {}


def register(pooling: Pooling) -> Pooling:
    """Add ``pooling`` to :data:`POOLINGS` (the CLI lists them in registration order)."""
    if pooling.name in POOLINGS:
        raise ValueError(f"pooling '{pooling.name}' is registered twice")
    if pooling.model not in (ATTENTION_LSTM, BASIC_LSTM):
        raise ValueError(f"pooling '{pooling.name}': unknown model '{pooling.model}'")
    POOLINGS[pooling.name] = pooling
    return pooling


# Attention LSTM (serattn.models.pooling).
register(Pooling("attention", ATTENTION_LSTM, "AttentionPooling", needs_mask=False, published=True, default=True))
register(Pooling("attentive-stats", ATTENTION_LSTM, "AttentiveStatsPooling"))
register(Pooling("multihead", ATTENTION_LSTM, "MultiHeadPooling", heads=True, weights="attention_heads"))
register(Pooling("attention+mean", ATTENTION_LSTM, "AttentionMeanPooling"))
register(Pooling("attention+stats", ATTENTION_LSTM, "AttentionMeanPooling"))
register(Pooling("attention+functionals", ATTENTION_LSTM, "AttentionPooling", functionals=True))
register(Pooling("region-attention", ATTENTION_LSTM, "AttentionPooling", pool_inputs=False, scores="frames"))
register(Pooling("class-attention", ATTENTION_LSTM, "MultiHeadPooling", weights="class_attention", per_class=True,
                 output="ClasswiseOutput"))
register(Pooling("evidence-attention", ATTENTION_LSTM, "MultiHeadPooling", pool_inputs=False, weights="class_attention",
                 scores="frames", per_class=True, output="EvidenceOutput"))
register(Pooling("guided-evidence-attention", ATTENTION_LSTM, "MultiHeadPooling", pool_inputs=False,
                 weights="class_attention", scores="frames", per_class=True, output="EvidenceOutput"))
# Basic LSTM: no attention layer; its analysis model reports uniform weights.
register(Pooling("mean", BASIC_LSTM, "MaskedPooling", pool_inputs=False, weights=None, published=True,
                 default=True))
register(Pooling("last", BASIC_LSTM, "MaskedPooling", pool_inputs=False, weights=None, published=True))
register(Pooling("mean+functionals", BASIC_LSTM, "MaskedPooling", pool_inputs=False, weights=None,
                 functionals=True))


def pooling_names(model: str | None = None) -> tuple[str, ...]:
    """Registered names, of ``model`` only when given, in registration order."""
    return tuple(name for name, pooling in POOLINGS.items() if model in (None, pooling.model))


def default_pooling(model: str) -> str:
    """The pooling ``model`` gets when none is asked for."""
    return next(pooling.name for pooling in POOLINGS.values() if pooling.model == model and pooling.default)


def has_functionals(name) -> bool:
    """Whether ``name`` is a registered pooling with functionals (False for any other value)."""
    pooling = POOLINGS.get(name) if isinstance(name, str) else None
    return bool(pooling and pooling.functionals)


def _joined(names, word):
    return f" {word} ".join(names)


def multihead_names() -> str:
    """The poolings that take ``--heads``, for messages."""
    return _joined([name for name, pooling in POOLINGS.items() if pooling.heads], "or")


def functionals_names() -> str:
    """The poolings with functionals, for messages."""
    return _joined([name for name, pooling in POOLINGS.items() if pooling.functionals], "or")


def check_pooling_choice(model, pooling, heads=1) -> Pooling:
    """The registered ``pooling`` of ``model``, its ``--heads`` checked; else an :class:`InputError`."""
    valid = pooling_names(model)
    if pooling not in valid:
        raise InputError(f"--pooling {pooling} does not apply to --model {model}; expected one of: "
                         f"{', '.join(valid)}")
    spec = POOLINGS[pooling]
    if heads < 1 or (heads > 1 and not spec.heads):
        raise InputError(f"--heads {heads} needs --pooling {multihead_names()} and must be at least 1")
    return spec


def check_pooling_flags(spec: Pooling, functionals_norm="batch", pool_inputs=False, mask=True, target=("emotion",),
                        pooled_dropout=0.0):
    """Refuse the flags that the pooling ``spec`` lacks (after :func:`check_pooling_choice`)."""
    if pooled_dropout and spec.output == "EvidenceOutput":
        raise InputError(f"--pooled-dropout does not apply to --pooling {spec.name}: its logits are its pooled "
                         f"evidence, which dropout would zero")
    if spec.per_class and tuple(target) != ("emotion",):
        raise InputError(f"--pooling {spec.name} has one attention per class and needs --target emotion alone, "
                         f"got --target {','.join(target)}")
    if functionals_norm != "batch" and not spec.functionals:
        raise InputError(f"--functionals-norm {functionals_norm} needs a pooling with functionals "
                         f"({functionals_names()}), got --pooling {spec.name}")
    if pool_inputs and not spec.pool_inputs:
        if spec.model == ATTENTION_LSTM:
            raise InputError(f"--pool-inputs does not apply to --pooling {spec.name}, which pools values of its own")
        raise InputError(f"--pool-inputs applies to --model {ATTENTION_LSTM} only")
    if (spec.needs_mask or pool_inputs) and not mask:
        raise InputError(f"--pooling {spec.name} needs the padding mask; drop --no-mask")
