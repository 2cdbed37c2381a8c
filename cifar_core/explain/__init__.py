"""Explaining: what a trained network says about a picture, and why.

`photos` turns a picture someone brings (a file, a camera shot) into the network's input;
`attribution` gives every class's probability, the answer in a sentence and where the network
looked (Captum); `inside` shows its layers, filters and feature maps; `network_imports` checks a
network trained elsewhere and keeps it as an imported run.
"""

from cifar_core.explain.attribution import answer_sentence, attribution, class_probabilities
from cifar_core.explain.inside import feature_maps, first_layer_filters, layer_table
from cifar_core.explain.network_imports import import_network
from cifar_core.explain.photos import Photo, read_photo

__all__ = ["Photo", "answer_sentence", "attribution", "class_probabilities", "feature_maps",
           "first_layer_filters", "import_network", "layer_table", "read_photo"]
