package io.github.edgebackbones.demo

import android.content.Context
import android.graphics.Bitmap
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.TensorBuffer
import io.github.edgebackbones.core.Accelerator
import io.github.edgebackbones.core.CompiledBackend
import io.github.edgebackbones.core.DType
import io.github.edgebackbones.core.MaskOverlay
import io.github.edgebackbones.core.ModelMetadata
import io.github.edgebackbones.core.PixelBox
import io.github.edgebackbones.core.PixelPoint
import io.github.edgebackbones.core.Preprocessor
import io.github.edgebackbones.core.RawTensor
import io.github.edgebackbones.core.RgbImage
import io.github.edgebackbones.core.SIGNATURE_KEY
import io.github.edgebackbones.core.SamDecoderMetadata
import io.github.edgebackbones.core.SamMasks
import io.github.edgebackbones.core.SamPair
import io.github.edgebackbones.core.SamPrompter
import io.github.edgebackbones.core.SamTensor
import io.github.edgebackbones.core.Tensors

/** One tap's result: the mask tinted over the photo, and SAM's masks and scores. */
class SamResult(val picture: Bitmap, val masks: SamMasks, val decoderMs: Double)

/**
 * Tap-to-segment glue: the encoder once per photo, the decoder per prompt, on the CPU
 * (the bundled pair is the `cpu` target: float I/O). Every prompt rule, coordinate and
 * picture is :core's [SamPrompter] and [MaskOverlay].
 */
class SamSession(context: Context, pair: SamPair, threads: Int) : AutoCloseable {
    private val encoderMetadata = ModelMetadata.parse(readText(context, pair.encoder))
    private val decoderMetadata = SamDecoderMetadata.parse(readText(context, pair.decoder))
    val prompter = SamPrompter(encoderMetadata, decoderMetadata)
    private val encoder: CompiledBackend =
        LiteRtFactory(context, pair.encoder, encoderMetadata).open(Accelerator.CPU, threads)
    private val decoder = LiteRtSignature(context, pair.decoder, decoderMetadata, threads)
    private var embeddings: RawTensor? = null
    private var photo: RgbImage? = null

    /** Runs the encoder on [image]; returns its time in ms. */
    fun setImage(image: RgbImage): Double {
        val start = System.nanoTime()
        val input = Preprocessor.preprocess(
            image, encoderMetadata.preprocessing, encoderMetadata.input.height, encoderMetadata.input.width,
        )
        val tensor = Tensors.toInputTensor(input, encoderMetadata.input, encoderMetadata.preprocessing.pixelsInGraph)
        val level = encoderMetadata.levels.single()
        // float embeddings, then whatever the decoder's input takes
        val values = Tensors.dequantize(encoder.run(tensor).getValue(level.name), level).values
        embeddings = prompter.toTensor("image_embeddings", values)
        prompter.setImage(image.height, image.width)
        photo = image
        return (System.nanoTime() - start) / 1e6
    }

    fun segment(points: List<PixelPoint>, labels: List<Int>, box: PixelBox?): SamResult {
        val inputs = prompter.decoderInputs(points, labels, box)
        val feed = inputs.byName.mapValues { (name, values) -> prompter.toTensor(name, values) } +
            ("image_embeddings" to checkNotNull(embeddings))
        val start = System.nanoTime()
        val masks = prompter.masks(decoder.run(feed))
        val ms = (System.nanoTime() - start) / 1e6
        val picture = MaskOverlay.draw(checkNotNull(photo), masks.masks[masks.best])
        return SamResult(picture.toBitmap(), masks, ms)
    }

    override fun close() {
        encoder.close()
        decoder.close()
    }
}

/** A CompiledModel with several named inputs (the SAM decoder), bound by SignatureDef name. */
class LiteRtSignature(context: Context, asset: String, private val metadata: SamDecoderMetadata, threads: Int) :
    AutoCloseable {
    private val model = CompiledModel.create(
        context.assets,
        asset,
        CompiledModel.Options(com.google.ai.edge.litert.Accelerator.CPU).apply {
            cpuOptions = CompiledModel.CpuOptions(numThreads = threads)
        },
        null,
    )
    private val inputs: Map<String, TensorBuffer> =
        metadata.inputs.keys.associateWith { model.createInputBuffer(it, SIGNATURE_KEY) }
    private val outputs: Map<String, TensorBuffer> =
        metadata.outputs.keys.associateWith { model.createOutputBuffer(it, SIGNATURE_KEY) }

    fun run(feed: Map<String, RawTensor>): Map<String, RawTensor> {
        for ((name, buffer) in inputs) {
            when (val value = feed.getValue(name)) {
                is RawTensor.Floats -> buffer.writeFloat(value.values)
                is RawTensor.Bytes -> buffer.writeInt8(value.values)
            }
        }
        model.run(inputs, outputs, SIGNATURE_KEY)
        return outputs.mapValues { (name, buffer) -> read(buffer, metadata.outputs.getValue(name)) }
    }

    private fun read(buffer: TensorBuffer, spec: SamTensor): RawTensor =
        if (spec.dtype == DType.FLOAT32) RawTensor.Floats(buffer.readFloat()) else RawTensor.Bytes(buffer.readInt8())

    override fun close() {
        (inputs.values + outputs.values).forEach { it.close() }
        model.close()
    }
}

private fun readText(context: Context, tflite: String) =
    context.assets.open(tflite.removeSuffix(".tflite") + ".json").use { it.readBytes().decodeToString() }

/** RGB bytes -> an ARGB bitmap. */
fun RgbImage.toBitmap(): Bitmap {
    val argb = IntArray(height * width) {
        val r = pixels[3 * it].toInt() and 0xFF
        val g = pixels[3 * it + 1].toInt() and 0xFF
        val b = pixels[3 * it + 2].toInt() and 0xFF
        (0xFF shl 24) or (r shl 16) or (g shl 8) or b
    }
    return Bitmap.createBitmap(argb, width, height, Bitmap.Config.ARGB_8888)
}
