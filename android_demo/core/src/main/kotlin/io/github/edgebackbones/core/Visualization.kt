package io.github.edgebackbones.core

import kotlin.math.sqrt

/** A picture of one level: ARGB pixels (0xAARRGGBB), row-major, ready for Bitmap.setPixels. */
class LevelPicture(val height: Int, val width: Int, val argb: IntArray)

object Visualization {
    /** (H, W): the L2 norm over channels at each position, in double. */
    fun channelNorm(map: FeatureMap): DoubleArray {
        val c = map.channels
        return DoubleArray(map.height * map.width) { p ->
            var sum = 0.0
            for (k in 0 until c) {
                val v = map.values[p * c + k].toDouble()
                sum += v * v
            }
            sqrt(sum)
        }
    }

    /** The channel-norm map, min-max scaled onto grey levels. */
    fun channelNormPicture(map: FeatureMap): LevelPicture {
        val norm = channelNorm(map)
        val grey = scaleTo255(norm)
        return LevelPicture(map.height, map.width, IntArray(grey.size) { rgb(grey[it], grey[it], grey[it]) })
    }

    /**
     * The first three principal components of the channel vectors as red,
     * green and blue (each min-max scaled). Components come from power
     * iteration with deflation on the C x C covariance; their signs are
     * arbitrary, as in any PCA.
     */
    fun pcaPicture(map: FeatureMap, iterations: Int = 200): LevelPicture {
        val components = principalComponents(map, minOf(3, map.channels), iterations)
        val n = map.height * map.width
        val c = map.channels
        val mean = channelMeans(map)
        val channels = components.map { axis ->
            scaleTo255(DoubleArray(n) { p -> (0 until c).sumOf { k -> (map.values[p * c + k] - mean[k]) * axis[k] } })
        }
        return LevelPicture(map.height, map.width, IntArray(n) { p ->
            rgb(channels[0][p], channels.getOrNull(1)?.get(p) ?: 0, channels.getOrNull(2)?.get(p) ?: 0)
        })
    }

    /** Unit vectors of the [count] largest-variance directions, largest first. */
    fun principalComponents(map: FeatureMap, count: Int, iterations: Int = 200): List<DoubleArray> {
        val c = map.channels
        val n = map.height * map.width
        val mean = channelMeans(map)
        val cov = Array(c) { DoubleArray(c) }
        for (p in 0 until n) {
            for (i in 0 until c) {
                val di = map.values[p * c + i] - mean[i]
                for (j in 0 until c) cov[i][j] += di * (map.values[p * c + j] - mean[j]) / n
            }
        }
        val found = mutableListOf<DoubleArray>()
        repeat(count) { index ->
            var v = DoubleArray(c) { if (it == index) 1.0 else 1.0 / (1 + it) }
            repeat(iterations) {
                val next = DoubleArray(c) { i -> (0 until c).sumOf { j -> cov[i][j] * v[j] } }
                val norm = sqrt(next.sumOf { it * it })
                if (norm == 0.0) return@repeat
                v = DoubleArray(c) { next[it] / norm }
            }
            val eigen = (0 until c).sumOf { i -> v[i] * (0 until c).sumOf { j -> cov[i][j] * v[j] } }
            for (i in 0 until c) for (j in 0 until c) cov[i][j] -= eigen * v[i] * v[j]
            found += v
        }
        return found
    }

    private fun channelMeans(map: FeatureMap): DoubleArray {
        val c = map.channels
        val n = map.height * map.width
        return DoubleArray(c) { k -> (0 until n).sumOf { p -> map.values[p * c + k].toDouble() } / n }
    }

    private fun scaleTo255(values: DoubleArray): IntArray {
        val lo = values.minOrNull() ?: 0.0
        val hi = values.maxOrNull() ?: 0.0
        val span = hi - lo
        return IntArray(values.size) { if (span == 0.0) 0 else ((values[it] - lo) / span * 255.0 + 0.5).toInt() }
    }

    private fun rgb(r: Int, g: Int, b: Int) = (0xFF shl 24) or (r shl 16) or (g shl 8) or b
}
