"""Canvas LMS Live Events pipeline: receiver, Beam pipeline and the pure core they share."""
__version__ = "0.1.0"
