"""gancompare's config schema, registered with Hydra whenever Hydra starts.

Hydra imports every module under `hydra_plugins/` before it composes a config (that is how its
launcher plugins register their own configs), so `conf/train.yaml`'s `train_schema` and the
`${oc.env:PROJECT_ROOT}` it needs are there for `hydra.compose` in a researcher's script or
notebook, before (or without) `import gancompare`.
"""

import gancompare  # noqa: F401  (registers train_schema and sets PROJECT_ROOT)
