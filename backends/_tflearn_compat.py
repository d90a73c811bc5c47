"""Import tflearn 0.5.0 on TensorFlow 2.x without changing TensorFlow for the rest of the process.

tflearn 0.5.0 does not import unaided on TF 2.21:
  - `tensorflow.python.util.nest.is_sequence` is gone (renamed `is_nested`);
  - `PIL.Image.ANTIALIAS` is gone (`Image.Resampling.LANCZOS`), used as a default argument;
  - `import tflearn` calls `tf.compat.v1.disable_v2_behavior()`, which would switch the whole
    process to graph mode for good and break Keras.
`import_tflearn()` adds the two missing names and makes `disable_v2_behavior` a no-op only
while tflearn imports, then removes/restores all three: both names are bound at import time
inside tflearn, so it needs none of them afterwards. tflearn must then be used inside its own
`tf.Graph()`. What stays changed is tflearn's own doing: it adds a few string constants
(INPUTS, LAYER_VARIABLES, ...) to `tf.compat.v1.GraphKeys`, which its layers need.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from backends.errors import one_line


def import_tflearn() -> ModuleType:
    """Return the tflearn module, importing it with the patches above; ImportError with the reason if it fails."""
    if isinstance(sys.modules.get("tflearn"), ModuleType):  # already imported (by us): the patches are gone
        return sys.modules["tflearn"]
    try:
        import tensorflow as tf
        from PIL import Image
        from tensorflow.python.util import nest

        v1 = importlib.import_module("tensorflow.compat.v1")  # the very module tflearn calls it on
    except Exception as err:
        raise ImportError(f"tflearn needs tensorflow and pillow ({one_line(err)})") from err

    added = []
    for owner, attr, value in ((nest, "is_sequence", nest.is_nested), (Image, "ANTIALIAS", Image.Resampling.LANCZOS)):
        if not hasattr(owner, attr):
            setattr(owner, attr, value)
            added.append((owner, attr))
    original = v1.disable_v2_behavior
    v1.disable_v2_behavior = lambda: None
    eager = tf.executing_eagerly()
    try:
        import tflearn
    except Exception as err:
        raise ImportError(f"tflearn does not import on tensorflow {tf.__version__} ({one_line(err)})") from err
    finally:
        v1.disable_v2_behavior = original
        for owner, attr in added:
            delattr(owner, attr)
    if tf.executing_eagerly() != eager:  # guard: another tflearn release might switch modes some other way
        raise ImportError("importing tflearn switched TensorFlow out of eager mode")
    return tflearn
