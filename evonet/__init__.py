"""evonet: neuroevolution and neural architecture search with DEAP, Keras and Ray."""

__version__ = "0.1.0"
