"""CNN Workbench's engine: architecture specs, shape inference, the Keras builder, datasets, and
the command line. It never imports Streamlit, and importing it does not import Keras.
"""

__version__ = "0.1.0"
