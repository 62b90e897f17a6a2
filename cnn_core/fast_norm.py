"""BatchNormalization that trains through TensorFlow's fused kernel.

Keras 3 normalises a batch in separate passes (upcast to float32, mean, variance, normalise,
downcast), each a trip through memory; TensorFlow's `FusedBatchNormV3` (oneDNN on a CPU) does
the statistics and the normalisation, and its gradient, in one kernel each, on bfloat16 inputs
directly. On a 2-core CPU that cuts the CPU presets' training step by about a sixth
(`python -m bench.norm`). Everywhere else (inference, other backends, masks, renormalisation,
inputs that are not NHWC images) this is Keras' own layer, with the same weights and
configuration; the saved model holds Keras' own class
(`cnn_core.training.checkpoints.portable_model`).
"""

from __future__ import annotations

from typing import Any

from cnn_core._keras import keras

FUSED_DTYPES = ("float32", "bfloat16", "float16")
FUSED_MIN_EPSILON = 1.001e-5  # TensorFlow raises a smaller epsilon to this in the fused kernel


@keras.saving.register_keras_serializable(package="cnn_core")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras' BatchNormalization; its training step runs fused where TensorFlow can."""

    keras_own = keras.layers.BatchNormalization  # the class a saved model holds in its place

    def fusable(self, inputs: Any, mask: Any) -> bool:
        """Whether a training call on `inputs` can take the fused kernel: TensorFlow, a 4-D
        channels-last float batch, the statistics over all but the channels, an epsilon the
        kernel keeps, no mask, no renormalisation or cross-replica statistics."""
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and self.epsilon >= FUSED_MIN_EPSILON
            and not self.renorm
            and not getattr(self, "synchronized", False)
            and len(inputs.shape) == 4
            and self.axis in (3, -1)
            and inputs.shape[-1] is not None
            and keras.backend.standardize_dtype(inputs.dtype) in FUSED_DTYPES
        )

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        if not (training and self.trainable and self.fusable(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = tf.convert_to_tensor(self.gamma) if self.scale else tf.ones((channels,))
        beta = tf.convert_to_tensor(self.beta) if self.center else tf.zeros((channels,))
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
        )[:3]
        # The kernel returns the variance with Bessel's correction (n / (n - 1)); Keras' moving
        # variance, which the saved model predicts with, averages the plain batch variance.
        count = tf.cast(tf.size(inputs) // channels, "float32")
        variance = variance * tf.maximum(count - 1.0, 0.0) / tf.maximum(count, 1.0)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return tf.cast(outputs, self.compute_dtype)
