"""From a folder of unlabelled photos to a labelled dataset, asking only for the labels that
matter.

``folder`` reads what is labelled and what is not, ``embed`` computes each image's backbone
features once and keeps them on disk, ``layout`` draws the 2-D map, ``suggest`` trains a head on
the labels given and picks what to ask next (and what it can label itself), ``assign`` moves or
copies files into class folders through the journal, and ``session.Labeller`` ties them together
by file path for the Label page and ``modelkit label``. ``html_map`` writes the map as one
offline HTML file. Nothing here deletes a file.
"""
