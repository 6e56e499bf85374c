"""persian-data: five public Persian sources from the Hugging Face Hub, verified and laid out."""

__version__ = "0.1.0"
