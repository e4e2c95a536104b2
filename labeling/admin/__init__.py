"""The operator console for labeling, one module per resource: labels and the top tags, labeling
run history, NSFW check jobs, and what labeling adds to albums' image and album pages (the label
inline, NSFW flag history and check jobs, the actions that start labeling runs and NSFW checks;
registered through albums.admin's extensions).

Labels written here go through labeling.services (with the API's serializer checking the fields
first), so a label made in the console is normalised, a person's and never a duplicate, as one
made through the API. Figures on the top-tags page come from labeling.analytics.
"""

from labeling.admin import album_pages, checks, labels, runs  # noqa: F401
