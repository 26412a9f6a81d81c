package io.github.edgebackbones.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test

/** :core's class-map overlay against edge_backbones/runtime/overlay.py's (make_goldens.py). */
class OverlayGoldenTest {
    @Suppress("UNCHECKED_CAST")
    private val case by lazy { Goldens.stats["overlay"] as Map<String, Any?> }

    private fun ints(name: String): IntArray {
        check(Goldens.dtype(name) == "int32") { "$name is ${Goldens.dtype(name)}" }
        val buffer = java.nio.ByteBuffer.wrap(Goldens.bytes(name)).order(java.nio.ByteOrder.LITTLE_ENDIAN).asIntBuffer()
        return IntArray(buffer.remaining()).also { buffer.get(it) }
    }

    @Test
    fun paletteIsPythons() {
        val want = Goldens.bytes("overlay/palette")
        val got = ClassMapOverlay.palette()
        for (id in got.indices) {
            for (c in 0 until 3) {
                assertEquals(want[3 * id + c].toInt() and 0xFF, (got[id] shr (8 * (2 - c))) and 0xFF, "class $id")
            }
        }
    }

    @Test
    fun overlayMatchesPythonPixelForPixel() {
        val (h, w) = Goldens.shape("overlay/photo")
        val photo = RgbImage(h, w, Goldens.bytes("overlay/photo"))
        val (mh, mw) = Goldens.shape("overlay/classes")
        @Suppress("UNCHECKED_CAST")
        val names = case["class_names"] as List<String>
        val got = ClassMapOverlay.overlay(photo, ints("overlay/classes"), mh, mw, names)
        val want = Goldens.bytes("overlay/blended")
        val differing = want.indices.count { want[it] != got.image.pixels[it] }
        assertEquals(0, differing, "$differing of ${want.size} overlay bytes differ from runtime/overlay.py")
        @Suppress("UNCHECKED_CAST")
        val legend = case["legend"] as List<List<Any?>>
        assertEquals(legend.size, got.legend.size)
        for ((entry, row) in got.legend.zip(legend)) {
            assertEquals((row[0] as Long).toInt(), entry.classId)
            assertEquals(row[1] as String, entry.name)
            assertEquals(row[2] as Double, entry.share, 1e-12)
        }
    }
}
