package io.github.edgebackbones.core

import kotlin.math.floor
import kotlin.math.min

/** One legend row: a class, its name, its share of the pixels and its colour (0xRRGGBB). */
data class LegendEntry(val classId: Int, val name: String, val share: Double, val rgb: Int)

/** A segmenter's class map over its photo, and the legend beside it. */
class ClassOverlay(val image: RgbImage, val legend: List<LegendEntry>)

/**
 * A class map blended over its photo, as edge_backbones/runtime/overlay.py draws it (the
 * reference; the goldens hold its pixels): the class map enlarged with nearest-neighbour (as
 * cv2.INTER_NEAREST, so class boundaries stay crisp and fall on the same pixels), PASCAL VOC's
 * fixed palette blended at [ALPHA], and the [LEGEND_ROWS] classes covering the most pixels. The
 * app draws the legend's text itself; this computes what it says.
 */
object ClassMapOverlay {
    const val LEGEND_ROWS = 8
    const val ALPHA = 0.55

    /** numColors colours as 0xRRGGBB: bit-interleaved, so neighbouring ids differ in colour. */
    fun palette(numColors: Int = 256): IntArray = IntArray(numColors) { id ->
        var rgb = 0
        for (shift in 0 until 8) {
            for (channel in 0 until 3) {
                val bit = (id shr (3 * shift + channel)) and 1
                rgb = rgb or (bit shl (7 - shift) shl (8 * (2 - channel)))
            }
        }
        rgb
    }

    /** The class map (height x width, row-major) at outHeight x outWidth, nearest neighbour. */
    fun resizeNearest(classes: IntArray, height: Int, width: Int, outHeight: Int, outWidth: Int): IntArray {
        if (classes.size != height * width) {
            throw InputException("A ${height}x$width class map needs ${height * width} ids; got ${classes.size}.")
        }
        // OpenCV's resizeNN: source index floor(dst * (1 / (dst / src))), clamped
        val ifx = 1.0 / (outWidth.toDouble() / width)
        val ify = 1.0 / (outHeight.toDouble() / height)
        val xs = IntArray(outWidth) { min(floor(it * ifx).toInt(), width - 1) }
        return IntArray(outHeight * outWidth) { i ->
            val y = min(floor((i / outWidth) * ify).toInt(), height - 1)
            classes[y * width + xs[i % outWidth]]
        }
    }

    /** [(class id, share)] of the limit most common classes; ties: the smaller id first. */
    fun topClasses(classes: IntArray, limit: Int = LEGEND_ROWS): List<Pair<Int, Double>> {
        val counts = HashMap<Int, Int>()
        for (id in classes) counts[id] = (counts[id] ?: 0) + 1
        val ids = counts.keys.sortedWith(compareBy<Int>({ -counts.getValue(it) }, { it }))
        return ids.take(limit).map { it to counts.getValue(it).toDouble() / classes.size }
    }

    /**
     * The photo with the class map (mapHeight x mapWidth, any size) blended over it, and the legend.
     * classNames[i] names class i (else "class i").
     */
    fun overlay(
        image: RgbImage,
        classes: IntArray,
        mapHeight: Int,
        mapWidth: Int,
        classNames: List<String> = emptyList(),
        alpha: Double = ALPHA,
    ): ClassOverlay {
        val resized = resizeNearest(classes, mapHeight, mapWidth, image.height, image.width)
        val colors = palette()
        // numpy's float32 photo term plus its float64 colour term, rounded half to even
        val keep = (1.0 - alpha).toFloat()
        val pixels = ByteArray(image.pixels.size)
        for (p in resized.indices) {
            val rgb = colors[Math.floorMod(resized[p], colors.size)]
            for (c in 0 until 3) {
                val photo = (keep * (image.pixels[3 * p + c].toInt() and 0xFF).toFloat()).toDouble()
                val paint = alpha * ((rgb shr (8 * (2 - c))) and 0xFF)
                pixels[3 * p + c] = Math.rint(photo + paint).toInt().coerceIn(0, 255).toByte()
            }
        }
        val legend = topClasses(resized).map { (id, share) ->
            LegendEntry(id, classNames.getOrNull(id) ?: "class $id", share, colors[Math.floorMod(id, colors.size)])
        }
        return ClassOverlay(RgbImage(image.height, image.width, pixels), legend)
    }
}
