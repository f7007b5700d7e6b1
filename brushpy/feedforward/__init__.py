"""Feed-forward splats from two posed views (issue 15, part 2): a DepthSplat-style encoder.

* :mod:`~brushpy.feedforward.encoder` the network (:class:`Encoder`, :class:`EncoderConfig`);
* :mod:`~brushpy.feedforward.lift` the pixel-aligned lift to splats as a tape op;
"""

from .encoder import ARCHITECTURE, Encoder, EncoderConfig, EncoderOutput, FeedForwardInputError, plane_inverse_depths
from .lift import HEAD_CHANNELS, PixelLiftOp, lift_reference, lift_vjp_reference

__all__ = ["ARCHITECTURE", "HEAD_CHANNELS", "Encoder", "EncoderConfig", "EncoderOutput", "FeedForwardInputError",
           "PixelLiftOp", "lift_reference", "lift_vjp_reference", "plane_inverse_depths"]
