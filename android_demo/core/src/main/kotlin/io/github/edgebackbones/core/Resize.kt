package io.github.edgebackbones.core

import kotlin.math.floor

/** A uint8 RGB image, row-major HWC, as the Python runtime's `load_image` returns it. */
class RgbImage(val height: Int, val width: Int, val pixels: ByteArray) {
    init {
        if (height <= 0 || width <= 0 || pixels.size != height * width * 3) {
            throw InputException(
                "An RGB image of ${height}x$width needs ${height.toLong() * width * 3} bytes; got " +
                    "${pixels.size}. Pass HWC RGB bytes (e.g. from Bitmap.getPixels, alpha dropped).",
            )
        }
    }

    operator fun get(y: Int, x: Int, c: Int): Int = pixels[(y * width + x) * 3 + c].toInt() and 0xFF
}

/**
 * `cv2.resize` of uint8 RGB, reproduced bit for bit (checked against OpenCV's
 * output by the golden tests).
 *
 * Linear: OpenCV's fixed-point path. Horizontal weights are 11-bit
 * (`round((1 - fx) * 2048)`), with the source column clamped inside the image;
 * vertical weights are not clamped, the two source rows are; the vertical sum
 * is rounded as OpenCV's SIMD kernel does, `(((a >> 4) * b0 >> 16) +
 * ((c >> 4) * b1 >> 16) + 2) >> 2`, which differs from the exact rounding of
 * `a * b0 + c * b1` in 1 of ~10 pixels.
 */
object OpenCvResize {
    private const val COEF_SCALE = 2048f

    fun resize(image: RgbImage, height: Int, width: Int, interpolation: Interpolation): RgbImage {
        if (height <= 0 || width <= 0) throw InputException("Resize target ${height}x$width must be positive.")
        if (height == image.height && width == image.width) return image
        return when (interpolation) {
            Interpolation.LINEAR -> linear(image, height, width)
            Interpolation.NEAREST -> nearest(image, height, width)
        }
    }

    private class Taps(val index: IntArray, val w0: IntArray, val w1: IntArray)

    private fun taps(source: Int, target: Int, clampWeights: Boolean): Taps {
        // OpenCV: scale = 1 / (target / source), both in double
        val scale = 1.0 / (target.toDouble() / source)
        val index = IntArray(target)
        val w0 = IntArray(target)
        val w1 = IntArray(target)
        for (d in 0 until target) {
            var f = ((d + 0.5) * scale - 0.5).toFloat()
            var s = floor(f).toInt()
            f -= s.toFloat()
            if (clampWeights && s < 0) { f = 0f; s = 0 }
            if (clampWeights && s >= source - 1) { f = 0f; s = source - 1 }
            index[d] = s
            w0[d] = Math.rint(((1f - f) * COEF_SCALE).toDouble()).toInt()
            w1[d] = Math.rint((f * COEF_SCALE).toDouble()).toInt()
        }
        return Taps(index, w0, w1)
    }

    private fun linear(image: RgbImage, height: Int, width: Int): RgbImage {
        val xs = taps(image.width, width, clampWeights = true)
        val ys = taps(image.height, height, clampWeights = false)
        // horizontal pass of every source row: width * 3 ints per row
        val rows = Array(image.height) { y ->
            IntArray(width * 3).also { row ->
                for (x in 0 until width) {
                    val x0 = xs.index[x]
                    val x1 = minOf(x0 + 1, image.width - 1)
                    for (c in 0 until 3) {
                        row[x * 3 + c] = image[y, x0, c] * xs.w0[x] + image[y, x1, c] * xs.w1[x]
                    }
                }
            }
        }
        val out = ByteArray(height * width * 3)
        for (y in 0 until height) {
            val r0 = rows[ys.index[y].coerceIn(0, image.height - 1)]
            val r1 = rows[(ys.index[y] + 1).coerceIn(0, image.height - 1)]
            val b0 = ys.w0[y]
            val b1 = ys.w1[y]
            for (i in 0 until width * 3) {
                val sum = ((r0[i] shr 4) * b0 shr 16) + ((r1[i] shr 4) * b1 shr 16)
                out[y * width * 3 + i] = ((sum + 2) shr 2).coerceIn(0, 255).toByte()
            }
        }
        return RgbImage(height, width, out)
    }

    private fun nearest(image: RgbImage, height: Int, width: Int): RgbImage {
        val fx = 1.0 / (width.toDouble() / image.width)
        val fy = 1.0 / (height.toDouble() / image.height)
        val out = ByteArray(height * width * 3)
        for (y in 0 until height) {
            val sy = minOf(floor(y * fy).toInt(), image.height - 1)
            for (x in 0 until width) {
                val sx = minOf(floor(x * fx).toInt(), image.width - 1)
                val from = (sy * image.width + sx) * 3
                image.pixels.copyInto(out, (y * width + x) * 3, from, from + 3)
            }
        }
        return RgbImage(height, width, out)
    }
}
