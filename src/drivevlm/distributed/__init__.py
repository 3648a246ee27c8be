"""Scale-out on Ray: simulator runners and reward annotators as Ray actors (several LVLM endpoints behind
one model: `drivevlm.models.lvlm.endpoints`).

Importing this package does not import Ray; the modules that need it (`ray_envs`, `ray_annotator`,
`executor`) import it when used, with an error naming the `ray` extra when it is missing.
"""
