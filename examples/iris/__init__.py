"""The iris reference model: a scikit-learn softmax classifier exported as plain
coefficients and served by nomadml's reference server; its spec, trainer, quickstart
and the narrated demo story."""
