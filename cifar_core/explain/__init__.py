"""Explaining: what a trained network says about a picture, and why.

`photos` turns a picture someone brings (a file, a camera shot) into the network's input;
`attribution` gives every class's probability, the answer in a sentence and where the network
looked (Captum); `inside` shows its layers, filters and feature maps; `network_imports` checks a
network trained elsewhere and keeps it as an imported run.
"""

import importlib

# Each name from the module that defines it, imported when first asked for: reading a photo
# (a set of your own adds hundreds) then never waits for Captum, which attribution imports.
_WHERE = {"answer_sentence": "attribution", "attribution": "attribution",
          "class_probabilities": "attribution", "feature_maps": "inside",
          "first_layer_filters": "inside", "layer_table": "inside",
          "import_network": "network_imports", "Photo": "photos", "read_photo": "photos"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
