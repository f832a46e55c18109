"""Image data formats: which axis holds the channels, and the frame shape in (H, W, C)."""

import keras


def standardize_data_format(data_format):
    data_format = data_format or keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"data_format must be 'channels_last' or 'channels_first'; got {data_format!r}"
        )
    return data_format


def frame_shape(image_shape, data_format):
    """`image_shape` in `data_format` order → (H, W, C)."""
    if data_format == "channels_first":
        return (image_shape[1], image_shape[2], image_shape[0])
    return tuple(image_shape)
