# Hydra config package: the YAML files here are the `conf/` config groups.
