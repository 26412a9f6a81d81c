package io.github.edgebackbones.core

import kotlin.math.min

/**
 * The model's input before quantization: float32 normalized values, or (with
 * `pixels_in_graph`) uint8 pixels. Row-major (H, W, 3), as `preprocess` returns it.
 */
sealed class ModelInput {
    abstract val height: Int
    abstract val width: Int

    class Floats(override val height: Int, override val width: Int, val values: FloatArray) : ModelInput()

    class Pixels(override val height: Int, override val width: Int, val values: ByteArray) : ModelInput()
}

/** runtime/preprocess.py's `resize` and `preprocess`, in the same float32 arithmetic. */
object Preprocessor {
    /** The size `policy` resizes a (inHeight, inWidth) image to, before any padding. */
    fun resizedSize(inHeight: Int, inWidth: Int, height: Int, width: Int, policy: ResizePolicy): Pair<Int, Int> {
        if (policy == ResizePolicy.STRETCH) return height to width
        val ratio = min(height.toDouble() / inHeight, width.toDouble() / inWidth)
        // SAM's ResizeLongestSide rounds half up, as the Python runtime does
        return min(height, (inHeight * ratio + 0.5).toInt()) to min(width, (inWidth * ratio + 0.5).toInt())
    }

    fun preprocess(image: RgbImage, spec: Preprocessing, height: Int, width: Int): ModelInput {
        val (h, w) = resizedSize(image.height, image.width, height, width, spec.resize)
        val resized = OpenCvResize.resize(image, h, w, spec.interpolation)
        val mean = FloatArray(3) { spec.mean[it].toFloat() }
        val scale = spec.scale.toFloat()
        return if (spec.pixelsInGraph) {
            // padding is the mean pixel, so the in-graph normalization makes it 0
            val pad = ByteArray(3) { Math.rint((mean[it] / scale).toDouble()).coerceIn(0.0, 255.0).toInt().toByte() }
            val out = ByteArray(height * width * 3) { pad[it % 3] }
            copyRows(resized, width, spec.bgr) { i, v -> out[i] = v.toByte() }
            ModelInput.Pixels(height, width, out)
        } else {
            val std = FloatArray(3) { spec.std[it].toFloat() }
            val out = FloatArray(height * width * 3)
            copyRows(resized, width, spec.bgr) { i, v -> out[i] = (v.toFloat() * scale - mean[i % 3]) / std[i % 3] }
            ModelInput.Floats(height, width, out)
        }
    }

    /** Calls `put(index in the padded output, pixel 0-255)` for every resized value. */
    private inline fun copyRows(image: RgbImage, outWidth: Int, bgr: Boolean, put: (Int, Int) -> Unit) {
        for (y in 0 until image.height) {
            for (x in 0 until image.width) {
                for (c in 0 until 3) {
                    put((y * outWidth + x) * 3 + c, image[y, x, if (bgr) 2 - c else c])
                }
            }
        }
    }
}
