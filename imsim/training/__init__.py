"""Training: the setup order, what breaks when a step is skipped, and why.

`trainer` (a `TrainingSession` over the setup journal), `checklist`, `diagnosis`,
its words (`render`), the lab report (`lab_report`) and the widget `apps`.
"""
