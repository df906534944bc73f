"""How a crop looks to the camera: colour by day, grey under infrared at night.

Camera traps spend half their life in infrared: the frames are grey (R = G = B), darker,
flatter, noisier and sometimes blurred by an animal moving during a long exposure. A model
trained on colour photos loses points on them (models/default/README.md has the shipped
model's grey gap). Two looks live here:

- :func:`grey_images`, the measurement: every image turned grey by the same fixed rule
  (ITU-R BT.601 luma, rounded, in all three channels; no noise, no randomness), so
  ``trapcount-train evaluate --grey`` and the export measure the grey gap on exactly the
  validation images the colour accuracy is measured on;
- :func:`ir_like`, the augmentation (``--ir P``): in the training pipeline
  (trainer.data.make_tf_dataset), after the shift, flip and cutout, each crop becomes, with
  probability P, a random infrared-like version of itself. The model input stays RGB.

The ranges of the IR look were read off real trap frames (measured at the model's input,
32 x 32 crops shrunk with INTER_AREA as the trainer and the agent shrink them):

- 937 of the 1,248 frames in ../shared/data/field-train are grey (mean |max - min| over
  the channels under 3 grey levels; the rest above 10): IR is the common case, not the rare
  one. Their 852 boxed animal crops have a median brightness of 84 (10-90%: 33-131) where
  CIFAR-10's grey images have 121 (84-164), and a median standard deviation of 22.5 (9-38)
  against CIFAR's 50 (31-71). The dark wildcat of field-dev/cat (MegaDetector__wildcat*)
  is darker and flatter still: 57.5 and 18.6.
- Contrast x0.4-1.2 (about the crop's own mean): the IR crops' spread is 0.45x CIFAR's at
  the median, 0.37x for the wildcat, 0.77x at the 90th percentile; up to 1.2 for the
  flash-lit animal close to the lens.
- Gamma 0.7-1.8 (255 (v / 255) ** gamma): taking CIFAR's median 121 to the IR median 84 is
  gamma 1.5, to the wildcat's 57 gamma 2.0 (1.8 goes most of the way; contrast does the
  rest); below 1 brightens, for the over-lit near animal (the IR 90th percentile, 131, is
  brighter than CIFAR's median).
- Sensor noise, Gaussian with sigma 0-8 grey levels per crop, the same in the three
  channels: the wildcat's black sky varies by a standard deviation of 8.3 in the full
  frame, noise and some vignetting (field-train's Reconyx frames, JPEG-smoothed, have a
  noise sigma of 0.9-1.9 by Immerkaer's estimate); shrinking a crop to 32 px averages noise
  away, and a small crop (55 px, the 10th percentile of field-train's boxes) keeps about
  1/1.7 of it, so 8 is the full-frame worst case, not the typical crop.
- Blur, on half the IR crops, a random share (0-1) of a 3 x 3 binomial blur (sigma about
  0.7 px): per unit of contrast the field IR crops are about as sharp as CIFAR at 32 px
  (mean gradient / standard deviation 0.66 against 0.60), so the blur is slight; the
  wildcat shows where it comes from (a cat walking through a long night exposure).

Order: grey, blur (optics and motion, before the sensor), contrast and gamma (exposure and
the tone curve), noise, then rounded to whole grey levels and clipped to 0-255, as a uint8
frame from the camera is.
"""

from __future__ import annotations

import numpy as np

# ITU-R BT.601 luma weights (what OpenCV's RGB2GRAY and PIL's "L" use).
LUMA = (0.299, 0.587, 0.114)

IR_CONTRAST = (0.4, 1.2)
IR_GAMMA = (0.7, 1.8)
IR_NOISE_SIGMA = (0.0, 8.0)  # grey levels
IR_BLUR_SHARE = 0.5  # of the IR crops, the share that get some blur


def grey_images(images: np.ndarray) -> np.ndarray:
    """RGB uint8 (..., 3) -> the same images grey: BT.601 luma, rounded to whole levels, in
    all three channels. Deterministic: the grey gap is measured on exactly these."""
    luma = np.asarray(images, np.float32) @ np.asarray(LUMA, np.float32)
    grey = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def ir_like(batch, probability: float):
    """A batch of float32 RGB crops (n, h, w, 3), values 0-255 -> the same batch where
    each crop, with ``probability``, is replaced by a random infrared-like version of it
    (grey in three equal channels; see the module doc for the ranges and why). TensorFlow
    ops, for the tf.data pipeline; the random numbers come from TensorFlow's global seed,
    as the rest of the augmentation's do."""
    # TensorFlow only for the training pipeline: evaluate and export need grey_images only.
    import tensorflow as tf

    with tf.name_scope("ir_like"):
        n = tf.shape(batch)[0]
        chosen = tf.random.uniform([n]) < probability
        grey = tf.tensordot(batch, tf.constant(LUMA, tf.float32), axes=[[3], [0]])[..., None]
        grey = _some_blur(grey, n)
        contrast = tf.random.uniform([n, 1, 1, 1], *IR_CONTRAST)
        mean = tf.reduce_mean(grey, axis=[1, 2, 3], keepdims=True)
        grey = tf.clip_by_value(mean + contrast * (grey - mean), 0.0, 255.0)
        gamma = tf.random.uniform([n, 1, 1, 1], *IR_GAMMA)
        grey = 255.0 * tf.pow(grey / 255.0, gamma)
        sigma = tf.random.uniform([n, 1, 1, 1], *IR_NOISE_SIGMA)
        grey = grey + sigma * tf.random.normal(tf.shape(grey))
        grey = tf.clip_by_value(tf.round(grey), 0.0, 255.0)
        return tf.where(chosen[:, None, None, None], tf.tile(grey, [1, 1, 1, 3]), batch)


def plain_grey(batch, probability: float):
    """A batch of float32 RGB crops (n, h, w, 3), values 0-255 -> the same batch where each
    crop, with ``probability``, is turned grey by :func:`grey_images`'s rule (BT.601 luma,
    rounded, in three channels) and nothing else (``--grey P``). A crop already grey (the IR
    look took it) is unchanged: its luma is its value. With ``--ir`` and ``--grey 1`` every
    crop is grey, part of them with the IR look and the rest plain, as a grey companion
    is trained (the plain ones are what ``evaluate --grey`` measures)."""
    import tensorflow as tf

    with tf.name_scope("plain_grey"):
        n = tf.shape(batch)[0]
        chosen = tf.random.uniform([n]) < probability
        grey = tf.round(tf.tensordot(batch, tf.constant(LUMA, tf.float32), axes=[[3], [0]]))
        grey = tf.tile(tf.clip_by_value(grey, 0.0, 255.0)[..., None], [1, 1, 1, 3])
        return tf.where(chosen[:, None, None, None], grey, batch)


def _some_blur(grey, n):
    """Half the crops (``IR_BLUR_SHARE``) get a random share of a 3 x 3 binomial blur, the
    border reflected."""
    import tensorflow as tf

    taps = tf.constant([1.0, 2.0, 1.0]) / 4.0
    kernel = (taps[:, None] * taps[None, :])[:, :, None, None]
    padded = tf.pad(grey, [[0, 0], [1, 1], [1, 1], [0, 0]], "REFLECT")
    blurred = tf.nn.conv2d(padded, kernel, strides=1, padding="VALID")
    share = tf.random.uniform([n, 1, 1, 1]) * tf.cast(
        tf.random.uniform([n, 1, 1, 1]) < IR_BLUR_SHARE, tf.float32
    )
    return grey + share * (blurred - grey)
