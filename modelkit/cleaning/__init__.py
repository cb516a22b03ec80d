"""Finding and fixing label errors and near-duplicates in a dataset folder.

``features`` embeds every image once (the bundled ImageNet backbone or a trained run),
``issues`` scores each image out of sample with k-fold linear heads and ranks likely label errors
by confident learning, ``duplicates`` groups near-identical images, ``finder`` ties them to a
scanned folder, and ``journal`` moves files (relabel, remove, re-split) with an undo for every
change. Nothing here deletes a file.
"""
