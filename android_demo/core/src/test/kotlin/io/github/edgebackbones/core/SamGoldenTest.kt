package io.github.edgebackbones.core

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import kotlin.math.abs
import kotlin.math.max

/** :core's SAM prompt logic against runtime/sam_predictor.py on a tiny exported pair (make_goldens.py). */
class SamGoldenTest {
    private val encoder by lazy { ModelMetadata.parse(Goldens.text("sam_encoder.json")) }
    private val decoder by lazy { SamDecoderMetadata.parse(Goldens.text("sam_decoder.json")) }

    @Suppress("UNCHECKED_CAST")
    private val cases by lazy { Goldens.stats["sam"] as Map<String, Map<String, Any?>> }

    private fun prompter() = SamPrompter(encoder, decoder).also {
        val (h, w) = Goldens.shape("sam/photo")
        it.setImage(h, w)
    }

    private fun numbers(value: Any?) = (value as List<*>).map { (it as Number).toDouble() }

    private fun outputs(case: String) = mapOf(
        "masks" to RawTensor.Floats(Goldens.floats("sam/$case/raw_masks")),
        "iou_predictions" to RawTensor.Floats(Goldens.floats("sam/$case/raw_iou_predictions")),
    )

    private fun bits(values: FloatArray) = values.map { it.toRawBits() }

    @Test
    fun decoderInputsAreThePredictorsExactly() {
        val prompter = prompter()
        val lowRes = HashMap<String, FloatArray>()
        assertEquals(5, cases.size)
        for ((name, case) in cases) {
            val points = (case["points"] as List<*>).map { numbers(it).let { (x, y) -> PixelPoint(x, y) } }
            val labels = (case["labels"] as List<*>).map { (it as Long).toInt() }
            val box = case["box"]?.let { numbers(it).let { (a, b, c, d) -> PixelBox(a, b, c, d) } }
            val maskFrom = case["mask_input_from"] as String?
            val got = prompter.decoderInputs(points, labels.ifEmpty { null }, box, maskFrom?.let { lowRes.getValue(it) })
            for ((input, values) in got.byName) {
                assertEquals(bits(Goldens.floats("sam/$name/$input")), bits(values), "$name: $input")
            }
            val masks = prompter.masks(outputs(name), case["multimask"] as Boolean)
            assertEquals((case["best"] as Long).toInt(), masks.best, name)
            assertArrayEquals(Goldens.floats("sam/$name/scores"), masks.scores, name)
            lowRes[name] = masks.lowResLogits[masks.best]
        }
    }

    @Test
    fun masksAtThePhotosSizeAgreeWithThePredictors() {
        val prompter = prompter()
        val (h, w) = Goldens.shape("sam/photo")
        var compared = 0
        var worst = 0.0
        for ((name, case) in cases) {
            val masks = prompter.masks(outputs(name), case["multimask"] as Boolean)
            val upscaled = Goldens.floats("sam/$name/upscaled")
            val want = Goldens.bytes("sam/$name/masks")
            assertEquals(masks.masks.size * h * w, want.size)
            for ((k, mask) in masks.masks.withIndex()) {
                val got = prompter.upscale(masks.lowResLogits[k])
                for (p in mask.indices) {
                    val reference = upscaled[k * h * w + p]
                    val error = abs(got[p] - reference).toDouble() / max(1.0, abs(reference).toDouble())
                    worst = max(worst, error)
                    // OpenCV hands float resizes to IPP: its last bits may differ, so only a
                    // logit within that rounding of 0 may binarize the other way
                    if (mask[p] != (want[k * h * w + p].toInt() == 1)) {
                        assertTrue(abs(reference) < 1e-5f, "$name mask $k pixel $p: logit $reference")
                    }
                    compared++
                }
            }
        }
        assertTrue(worst < 1e-5, "upscaled logits differ by $worst (relative) from the predictor's")
        assertTrue(compared > 10_000)
    }

    @Test
    fun maskPictureMatchesTheSegmentCommandsOutsideItsOutline() {
        val (h, w) = Goldens.shape("sam/photo")
        val photo = RgbImage(h, w, Goldens.bytes("sam/photo"))
        var tinted = 0
        for (name in cases.keys) {
            val masks = Goldens.bytes("sam/$name/masks")
            for (k in 0 until Goldens.shape("sam/$name/masks")[0]) {
                val mask = BooleanArray(h * w) { masks[k * h * w + it].toInt() == 1 }
                val got = MaskOverlay.draw(photo, mask).pixels
                val want = Goldens.bytes("sam/$name/overlay_$k")
                // the outline (2 px contours) is the app's own drawing
                val outline = Goldens.bytes("sam/$name/outline_$k")
                val compared = want.indices.filter { outline[it / 3].toInt() == 0 }
                val differing = compared.count { want[it] != got[it] }
                assertEquals(0, differing, "$name mask $k: $differing bytes differ from `edge-backbones segment`'s")
                tinted += (0 until h * w).count { mask[it] && outline[it].toInt() == 0 }
            }
        }
        // enough pixels inside masks, off their outlines, for the tint to be tested
        assertTrue(tinted > 5_000, "only $tinted tinted pixels compared")
    }

    @Test
    fun badPromptsAreTypedErrorsAndThePrompterStaysUsable() {
        val fresh = SamPrompter(encoder, decoder)
        assertThrows(ImageNotSetException::class.java) { fresh.decoderInputs(listOf(PixelPoint(1.0, 1.0))) }
        val prompter = prompter()
        val (h, w) = Goldens.shape("sam/photo")
        val inside = PixelPoint(10.0, 10.0)
        val bad = listOf(
            { prompter.decoderInputs(listOf(PixelPoint(w + 0.5, 1.0))) },
            { prompter.decoderInputs(listOf(PixelPoint(1.0, -0.1))) },
            { prompter.decoderInputs(List(decoder.maxPoints + 1) { inside }) },
            { prompter.decoderInputs(listOf(PixelPoint(Double.NaN, 1.0))) },
            { prompter.decoderInputs(listOf(inside), listOf(2)) },
            { prompter.decoderInputs(listOf(inside), listOf(1, 1)) },
            { prompter.decoderInputs(box = PixelBox(20.0, 5.0, 10.0, 30.0)) },
            { prompter.decoderInputs(box = PixelBox(0.0, 0.0, w.toDouble(), h + 1.0)) },
            { prompter.decoderInputs() },
            { prompter.decoderInputs(listOf(inside), maskInput = FloatArray(7)) },
        )
        for ((i, call) in bad.withIndex()) assertThrows(InputException::class.java, { call() }, "case $i")
        assertEquals(1f, prompter.decoderInputs(listOf(inside)).pointLabels[0])
    }

    @Test
    fun anEncoderFromAnotherCheckpointIsRefused() {
        val sha = decoder.checkpointSha256!!
        val other = SamDecoderMetadata.parse(Goldens.text("sam_decoder.json").replace(sha, "0".repeat(sha.length)))
        val error = assertThrows(MetadataException::class.java) { SamPrompter(encoder, other) }
        assertTrue("checkpoint_sha256" in error.message!!, error.message)
        assertThrows(MetadataException::class.java) { SamPrompter(Goldens.metadata("cpu"), decoder) }
    }
}

class BundleTest {
    private fun sidecar(name: String) = Goldens.text("$name.json")

    @Test
    fun rolesAndPairsComeFromTheSidecars() {
        assertEquals(ArtifactRole.BACKBONE, Bundle.roleOf(sidecar("cpu")))
        assertEquals(ArtifactRole.SEGMENTER, Bundle.roleOf(sidecar("segmenter")))
        assertEquals(ArtifactRole.SAM_ENCODER, Bundle.roleOf(sidecar("sam_encoder")))
        assertEquals(ArtifactRole.SAM_DECODER, Bundle.roleOf(sidecar("sam_decoder")))
        val decoder = sidecar("sam_decoder")
        val sha = SamDecoderMetadata.parse(decoder).checkpointSha256!!
        val assets = mapOf(
            "enc.tflite" to sidecar("sam_encoder"),
            "dec.tflite" to decoder,
            "other_dec.tflite" to decoder.replace(sha, "1".repeat(sha.length)),
            "seg.tflite" to sidecar("segmenter"),
        )
        assertEquals(listOf(SamPair("enc.tflite", "dec.tflite")), Bundle.samPairs(assets))
        assertEquals(emptyList<SamPair>(), Bundle.samPairs(assets - "dec.tflite"))
    }
}

class ViewMappingTest {
    @Test
    fun tapsLandInThePhotoFittedInTheView() {
        // 600x400 photo in a 1000x500 view: scale 1.25, drawn 750x500 from x = 125
        val p = ViewMapping.viewToImage(200.0, 250.0, 1000, 500, 600, 400)!!
        assertEquals(60.0, p.x, 1e-12)
        assertEquals(200.0, p.y, 1e-12)
        assertNull(ViewMapping.viewToImage(50.0, 250.0, 1000, 500, 600, 400))
        val corner = ViewMapping.viewToImage(875.0, 500.0, 1000, 500, 600, 400)!!
        assertEquals(600.0, corner.x, 1e-9)
        assertEquals(400.0, corner.y, 1e-9)
        val back = ViewMapping.imageToView(p, 1000, 500, 600, 400)
        assertEquals(200.0, back.x, 1e-9)
        assertEquals(250.0, back.y, 1e-9)
    }
}
