"""reviewlstm: predict a review's star rating from its text with recurrent networks."""
__version__ = "0.1.0"
