"""trapcount trainer: labelled images -> Keras model -> int8 TFLite model with a manifest."""
