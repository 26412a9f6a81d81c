package io.github.edgebackbones.core

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Test

/** A tiny exported SegFormer's outputs, by name, to the overlay runtime/overlay.py draws (make_goldens.py). */
class SegmenterGoldenTest {
    private val metadata by lazy { ModelMetadata.parse(Goldens.text("segmenter.json")) }

    private fun outputs() = mapOf(
        "classes" to RawTensor.Bytes(Goldens.bytes("segmenter/raw_classes")),
        "logits" to RawTensor.Floats(Goldens.floats("segmenter/raw_logits")),
    )

    @Test
    fun readsTheSegmentersSidecar() {
        Segmentation.require(metadata)
        assertEquals(listOf("wall", "floor", "sky", "tree", "person"), Segmentation.classNames(metadata))
        assertEquals(listOf(1, 16, 16), metadata.level("classes").shape)
        assertEquals(DType.UINT8, metadata.level("classes").dtype)
    }

    @Test
    fun classMapIsTheGraphsAndTheHostsArgmaxAgrees() {
        val want = Goldens.bytes("segmenter/raw_classes").map { it.toInt() and 0xFF }.toIntArray()
        val map = Segmentation.classMap(outputs(), metadata)
        assertEquals(16, map.height)
        assertEquals(16, map.width)
        assertArrayEquals(want, map.ids)
        // the host's argmax (for artifacts whose graph leaves it to the host) on the same logits
        val logits = Tensors.dequantize(outputs().getValue("logits"), metadata.level("logits"))
        assertArrayEquals(want, Segmentation.argmax(logits).ids)
    }

    @Test
    fun overlayMatchesPythonPixelForPixel() {
        val (h, w) = Goldens.shape("segmenter/photo")
        val photo = RgbImage(h, w, Goldens.bytes("segmenter/photo"))
        val got = Segmentation.overlay(photo, Segmentation.classMap(outputs(), metadata), metadata)
        val want = Goldens.bytes("segmenter/blended")
        val differing = want.indices.count { want[it] != got.image.pixels[it] }
        assertEquals(0, differing, "$differing of ${want.size} bytes differ from runtime/overlay.py")
        @Suppress("UNCHECKED_CAST")
        val legend = (Goldens.stats["segmenter"] as Map<String, Any?>)["legend"] as List<List<Any?>>
        assertEquals(legend.map { (it[0] as Long).toInt() to it[1] }, got.legend.map { it.classId to it.name })
        assertEquals(legend.map { it[2] as Double }, got.legend.map { it.share })
    }

    @Test
    fun aBackboneIsNotASegmenter() {
        assertThrows(MetadataException::class.java) { Segmentation.classMap(outputs(), Goldens.metadata("cpu")) }
    }
}
