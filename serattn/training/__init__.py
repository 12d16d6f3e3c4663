"""Training: batches (``batches``), the Keras loop (``trainer``, imports TensorFlow),
speaker protocols (``protocols``), static scikit-learn models (``static``), ensembles of
run folders (``fusion``) and tf.distribute strategies (``distribute``)."""
