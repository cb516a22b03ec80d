"""Data: scanning folders and layouts, reading images, the decode cache, batched augmentation,
the dataset report, zip import, and the built-in and sample datasets."""
