"""fersweep: honest, tracked hyperparameter sweeps for facial-expression classifiers."""

EMOTIONS: tuple[str, ...] = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
)

__version__ = "0.4.0"
