"""Training: the loop, its callbacks, schedules, two-phase fine-tuning and distributed helpers."""
