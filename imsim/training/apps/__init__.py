"""Point-and-click apps (ipywidgets) for people who do not write Python: the trainer
(`imsim.training.apps.trainer`) and the planner (`imsim.training.apps.planner`). Shown at the end of
notebooks 01 and 02, served on their own by ``imsim app trainer|planner`` (Voila)."""
