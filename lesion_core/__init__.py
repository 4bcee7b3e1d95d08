"""Lesion Lab engine: data, augmentation, models, training, metrics and run folders.

Never imports streamlit: the Streamlit pages and the command line are thin faces on it.
"""

__version__ = "0.1.0"
