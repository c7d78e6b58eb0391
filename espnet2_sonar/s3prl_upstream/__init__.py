"""BEATs encoders as s3prl upstreams.

Importing this package registers ``sonar_local``, ``sonar_url`` and ``sonar_custom`` into
``s3prl.hub``, so that::

    import espnet2_sonar.s3prl_upstream  # noqa: F401
    from s3prl.nn import S3PRLUpstream, Featurizer

    upstream = S3PRLUpstream("sonar_local", path_or_url="exp/beats_sonar.pt")
    featurizer = Featurizer(upstream)

works like any built-in upstream (hidden states of every layer, 160 ms frames).
This package only makes our encoders loadable by s3prl's tools; the toolkit's SUPERB-style
probe (weighted layer sum -> mean pooling -> linear) is ``espnet2_sonar.eval.probe``.
"""

from .hubconf import sonar_custom, sonar_local, sonar_url

HUB_ENTRIES = {"sonar_local": sonar_local, "sonar_url": sonar_url, "sonar_custom": sonar_custom}


def register() -> None:
    """Add the ``sonar_*`` entries to ``s3prl.hub`` (idempotent)."""
    from s3prl import hub

    for name, fn in HUB_ENTRIES.items():
        setattr(hub, name, fn)


register()

__all__ = ["register", "sonar_local", "sonar_url", "sonar_custom", "HUB_ENTRIES"]
