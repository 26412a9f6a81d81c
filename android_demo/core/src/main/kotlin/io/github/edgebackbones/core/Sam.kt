package io.github.edgebackbones.core

import kotlin.math.floor
import kotlin.math.min

/** A point in photo pixels: (x, y), x to the right, y down. */
data class PixelPoint(val x: Double, val y: Double)

/** A box in photo pixels, top-left corner first. */
data class PixelBox(val x0: Double, val y0: Double, val x1: Double, val y1: Double)

/** One tensor of the SAM decoder's signature, as its sidecar's task.inputs lists it. */
data class SamTensor(val name: String, val shape: List<Int>, val dtype: DType, val quantization: Quantization?) {
    val elementCount get() = shape.fold(1) { a, b -> a * b }
}

/**
 * A SAM decoder's sidecar (task kind "sam_decoder"): its fixed signature and what ties it to
 * its encoder. Its outputs (`masks` (1, 4h, 4w, K), `iou_predictions` (1, K)) are not NHWC
 * pyramid levels, so it is read here rather than by [ModelMetadata].
 */
class SamDecoderMetadata(
    val checkpointSha256: String?,
    val imageSize: List<Int>,
    val embeddingShape: List<Int>,
    val maxPoints: Int,
    val numPointSlots: Int,
    val maskInputSize: List<Int>,
    val inputs: Map<String, SamTensor>,
    val outputs: Map<String, SamTensor>,
    val raw: Map<String, Any?>,
) {
    companion object {
        const val KIND = "sam_decoder"
        val INPUTS = listOf("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input")
        val OUTPUTS = listOf("masks", "iou_predictions")

        fun parse(jsonText: String, schema: ArtifactSchema = ArtifactSchema.bundled): SamDecoderMetadata {
            val json = Json.parse(jsonText)
            schema.validate(json)
            val root = json.asObject("the sidecar")
            val task = root.field("task").asObject("task")
            if (task["kind"] != KIND) {
                throw MetadataException(
                    "This sidecar's task kind is ${quote(task["kind"])}, not \"$KIND\": bundle the " +
                        "decoder .tflite and .json that `edge-backbones export` wrote from a SAM checkpoint.",
                )
            }
            val inputs = task.field("inputs").asObject("task.inputs")
                .mapValues { (name, spec) -> tensorOf(name, spec, "task.inputs.$name") }
            val outputs = root.field("outputs").asObject("outputs")
                .mapValues { (name, spec) -> tensorOf(name, spec, "outputs.$name") }
            val absent = (INPUTS - inputs.keys) + (OUTPUTS - outputs.keys)
            if (absent.isNotEmpty()) {
                throw MetadataException("The SAM decoder's sidecar lacks $absent; export the decoder again.")
            }
            return SamDecoderMetadata(
                checkpointSha256 = task["checkpoint_sha256"] as? String,
                imageSize = ints(task.field("image_size"), "task.image_size"),
                embeddingShape = ints(task.field("embedding_shape"), "task.embedding_shape"),
                maxPoints = task.field("max_points").asNumber("task.max_points").toInt(),
                numPointSlots = task.field("num_point_slots").asNumber("task.num_point_slots").toInt(),
                maskInputSize = ints(task.field("mask_input_size"), "task.mask_input_size"),
                inputs = inputs,
                outputs = outputs,
                raw = root,
            )
        }

        private fun tensorOf(name: String, spec: Any?, where: String): SamTensor {
            val t = spec.asObject(where)
            val q = t["quantization"]
            val quantization = when (q) {
                null -> null
                // the decoder's inputs list [scale, zero_point]; outputs an object
                is List<*> -> Quantization(
                    q[0].asNumber("$where.quantization").toFloat(),
                    q[1].asNumber("$where.quantization").toInt(),
                )
                else -> q.asObject("$where.quantization").let {
                    Quantization(
                        it.field("scale").asNumber("$where.quantization.scale").toFloat(),
                        it.field("zero_point").asNumber("$where.quantization.zero_point").toInt(),
                    )
                }
            }
            return SamTensor(
                name,
                ints(t.field("shape"), "$where.shape"),
                DType.of(t.field("dtype").asString("$where.dtype"), where),
                quantization,
            )
        }

        private fun ints(value: Any?, where: String): List<Int> {
            val list = value as? List<*> ?: throw MetadataException("$where must be a list; got ${quote(value)}.")
            return list.map { it.asNumber(where).toInt() }
        }
    }
}

/** The five arrays the decoder's signature takes, by name, as float32 (quantize with [SamPrompter.toTensor]). */
class SamDecoderInputs(
    val pointCoords: FloatArray,
    val pointLabels: FloatArray,
    val maskInput: FloatArray,
    val hasMaskInput: FloatArray,
) {
    /** Input name -> values, without the embeddings (those come from the encoder). */
    val byName: Map<String, FloatArray>
        get() = mapOf(
            "point_coords" to pointCoords,
            "point_labels" to pointLabels,
            "mask_input" to maskInput,
            "has_mask_input" to hasMaskInput,
        )
}

/**
 * SAM's masks for one prompt: [lowResLogits] (K, 4h, 4w) row-major per mask (feed one back as
 * mask input), [scores] the predicted IoUs, [masks] (K, H, W) at the photo's size.
 */
class SamMasks(
    val lowResLogits: List<FloatArray>,
    val scores: FloatArray,
    val masks: List<BooleanArray>,
    val height: Int,
    val width: Int,
) {
    /** The mask SAM predicts best (largest IoU prediction; the first on ties). */
    val best: Int
        get() = scores.indices.maxByOrNull { scores[it] } ?: 0
}

/**
 * The prompt logic of runtime/sam_predictor.py's `SamPredictor`, without the models: photo
 * coordinates through the encoder's longest-side resize, the fixed-size point arrays the
 * decoder takes (points, then the box's corners labelled 2 and 3, then "not a point" -1),
 * the mask input, and the masks back at the photo's size, binarized at 0. The app runs the
 * encoder once per photo ([setImage]) and the decoder per prompt.
 */
class SamPrompter(encoder: ModelMetadata, val decoder: SamDecoderMetadata) {
    val inputHeight = encoder.input.height
    val inputWidth = encoder.input.width
    val maxPoints = decoder.maxPoints
    val numPointSlots = decoder.numPointSlots
    private val maskHeight = decoder.maskInputSize[0]
    private val maskWidth = decoder.maskInputSize[1]
    private var original: Pair<Int, Int>? = null

    init {
        val task = encoder.raw["task"] as? Map<*, *>
        if (task?.get("kind") != "sam_encoder") {
            throw MetadataException(
                "${encoder.modelName} (${encoder.mode}) is not a SAM encoder (task kind " +
                    "${quote(task?.get("kind"))}). Bundle the encoder exported with the decoder.",
            )
        }
        val differ = listOf(
            "checkpoint_sha256" to decoder.checkpointSha256,
            "image_size" to decoder.imageSize,
            "embedding_shape" to decoder.embeddingShape,
        ).filter { (field, value) -> normalized(task[field]) != normalized(value) }
            .map { (field, value) -> "$field: encoder ${quote(task[field])}, decoder ${quote(value)}" }
        if (differ.isNotEmpty()) {
            throw MetadataException(
                "The bundled encoder and decoder are not a pair: ${differ.joinToString("; ")}. Export both " +
                    "from one checkpoint at one image size, and bundle those two files.",
            )
        }
    }

    /** The photo the encoder just ran on; prompts are in its pixels from now on. */
    fun setImage(height: Int, width: Int) {
        if (height <= 0 || width <= 0) throw InputException("A photo of ${height}x$width has no pixels.")
        original = height to width
    }

    /** (height, width) of the photo given to [setImage]. */
    val originalSize: Pair<Int, Int>
        get() = original ?: throw ImageNotSetException(
            "Masks were asked for before setImage(): run the encoder on the photo and call " +
                "setImage(height, width) first (once per photo).",
        )

    /** (height, width) of the photo inside the encoder's input (SAM's longest side, rounded half up). */
    fun resizedSize(): Pair<Int, Int> {
        val (h, w) = originalSize
        return Preprocessor.resizedSize(h, w, inputHeight, inputWidth, ResizePolicy.LONGEST_SIDE_PAD)
    }

    /** Photo (x, y) -> encoder-input (x, y): float64 product, float32 result, as map_coordinates. */
    fun toEncoder(point: PixelPoint): Pair<Float, Float> {
        val (h, w) = originalSize
        val (newH, newW) = resizedSize()
        return (point.x * (newW.toDouble() / w)).toFloat() to (point.y * (newH.toDouble() / h)).toFloat()
    }

    /**
     * The decoder's inputs for one prompt: [points] with [labels] (1 foreground, 0 background;
     * default all 1), a [box], a previous prediction's low-resolution logits as [maskInput].
     * Every check runs before anything is built, so a bad prompt leaves the prompter usable.
     */
    fun decoderInputs(
        points: List<PixelPoint> = emptyList(),
        labels: List<Int>? = null,
        box: PixelBox? = null,
        maskInput: FloatArray? = null,
    ): SamDecoderInputs {
        val (height, width) = originalSize
        val kinds = labels ?: List(points.size) { 1 }
        if (points.size > maxPoints) {
            throw InputException(
                "${points.size} points; this decoder was exported for at most $maxPoints. Pass fewer, " +
                    "or export the decoder again with more point slots.",
            )
        }
        for (p in points) {
            if (!p.x.isFinite() || !p.y.isFinite()) {
                throw InputException("Point (${p.x}, ${p.y}) holds NaN or Inf; pass finite pixel coordinates.")
            }
            if (p.x < 0 || p.x > width || p.y < 0 || p.y > height) {
                throw InputException(
                    "Point (${p.x}, ${p.y}) is outside the ${width}x$height image set with setImage; " +
                        "points are (x, y) pixels of that image.",
                )
            }
        }
        if (kinds.size != points.size || kinds.any { it != 0 && it != 1 }) {
            throw InputException(
                "Labels $kinds for ${points.size} points; pass one label per point, 1 (foreground) " +
                    "or 0 (background).",
            )
        }
        if (box != null) checkBox(box, height, width)
        if (points.isEmpty() && box == null) throw InputException("No prompt: pass points (with labels) and/or a box.")
        val maskSize = maskHeight * maskWidth
        if (maskInput != null) {
            if (maskInput.size != maskSize) {
                throw InputException(
                    "A mask input of ${maskInput.size} values; the decoder takes ${maskHeight}x$maskWidth " +
                        "low-resolution logits: pass one of a previous prediction's lowResLogits.",
                )
            }
            if (maskInput.any { !it.isFinite() }) throw InputException("The mask input holds NaN or Inf.")
        }
        val coords = FloatArray(numPointSlots * 2)
        val slotLabels = FloatArray(numPointSlots) { -1f }
        val corners = if (box == null) emptyList() else listOf(PixelPoint(box.x0, box.y0), PixelPoint(box.x1, box.y1))
        for ((i, p) in (points + corners).withIndex()) {
            val (x, y) = toEncoder(p)
            coords[2 * i] = x
            coords[2 * i + 1] = y
            slotLabels[i] = if (i < points.size) kinds[i].toFloat() else (2 + i - points.size).toFloat()
        }
        return SamDecoderInputs(
            coords,
            slotLabels,
            maskInput?.copyOf() ?: FloatArray(maskSize),
            floatArrayOf(if (maskInput != null) 1f else 0f),
        )
    }

    /** A decoder input as the bytes or floats its tensor takes (quantized for an integer input). */
    fun toTensor(name: String, values: FloatArray): RawTensor {
        val spec = decoder.inputs[name] ?: throw InputException("The decoder has no input \"$name\".")
        if (spec.dtype == DType.FLOAT32) return RawTensor.Floats(values)
        return Tensors.quantize(values, InputInfo(spec.name, spec.shape, spec.dtype, spec.quantization))
    }

    /**
     * The decoder's outputs by name -> masks at the photo's size. `masks` holds every mask:
     * index 0 is the single-mask output, 1.. the multimask ones.
     */
    fun masks(outputs: Map<String, RawTensor>, multimask: Boolean = true): SamMasks {
        val (height, width) = originalSize
        val logits = dequantize(outputs, "masks")
        val iou = dequantize(outputs, "iou_predictions")
        val count = decoder.outputs.getValue("masks").shape[3]
        val keep = if (multimask) 1 until count else 0 until 1
        val lowRes = keep.map { k -> FloatArray(maskHeight * maskWidth) { logits[it * count + k] } }
        val masks = lowRes.map { low -> upscale(low).let { up -> BooleanArray(up.size) { up[it] > 0f } } }
        return SamMasks(lowRes, FloatArray(keep.count()) { iou[keep.first + it] }, masks, height, width)
    }

    /**
     * (4h, 4w) logits -> the photo's size, as SAM's postprocessing: bilinear to the encoder's
     * input, crop the padding, bilinear to the photo.
     */
    fun upscale(lowRes: FloatArray): FloatArray {
        val (height, width) = originalSize
        val (newH, newW) = resizedSize()
        val full = FloatResize.linear(lowRes, maskHeight, maskWidth, inputHeight, inputWidth)
        val cropped = FloatArray(newH * newW) { full[(it / newW) * inputWidth + it % newW] }
        return FloatResize.linear(cropped, newH, newW, height, width)
    }

    private fun dequantize(outputs: Map<String, RawTensor>, name: String): FloatArray {
        val spec = decoder.outputs.getValue(name)
        val raw = outputs[name] ?: throw InputException(
            "The decoder returned ${outputs.keys.sorted()}, without \"$name\"; bundle its own sidecar.",
        )
        return Tensors.dequantize(raw, LevelInfo(name, spec.shape, spec.dtype, spec.quantization, null, null)).values
    }

    private fun checkBox(box: PixelBox, height: Int, width: Int) {
        val values = listOf(box.x0, box.y0, box.x1, box.y1)
        if (values.any { !it.isFinite() }) throw InputException("Box $values holds NaN or Inf.")
        if (box.x1 < box.x0 || box.y1 < box.y0) {
            throw InputException("Box $values has x1 < x0 or y1 < y0; pass the top-left corner first.")
        }
        if (box.x0 < 0 || box.y0 < 0 || box.x1 > width || box.y1 > height) {
            throw InputException("Box $values reaches outside the ${width}x$height image set with setImage.")
        }
    }

    private fun normalized(value: Any?): Any? = when (value) {
        is List<*> -> value.map { (it as? Number)?.toLong() ?: it }
        else -> value
    }
}

/** Where a tap on the photo's view lands in the photo, the photo drawn fitted and centred (ContentScale.Fit). */
object ViewMapping {
    /** View pixels -> photo pixels, or null for a tap on the letterbox around the photo. */
    fun viewToImage(
        viewX: Double,
        viewY: Double,
        viewWidth: Int,
        viewHeight: Int,
        imageWidth: Int,
        imageHeight: Int,
    ): PixelPoint? {
        val scale = min(viewWidth.toDouble() / imageWidth, viewHeight.toDouble() / imageHeight)
        val left = (viewWidth - imageWidth * scale) / 2
        val top = (viewHeight - imageHeight * scale) / 2
        val x = (viewX - left) / scale
        val y = (viewY - top) / scale
        return if (x < 0 || y < 0 || x > imageWidth || y > imageHeight) null else PixelPoint(x, y)
    }

    /** Photo pixels -> view pixels (where to draw a prompt's mark): the inverse of [viewToImage]. */
    fun imageToView(point: PixelPoint, viewWidth: Int, viewHeight: Int, imageWidth: Int, imageHeight: Int): PixelPoint {
        val scale = min(viewWidth.toDouble() / imageWidth, viewHeight.toDouble() / imageHeight)
        val left = (viewWidth - imageWidth * scale) / 2
        val top = (viewHeight - imageHeight * scale) / 2
        return PixelPoint(left + point.x * scale, top + point.y * scale)
    }
}

/**
 * A float map resized bilinearly with OpenCV's sampling (half-pixel centres; a source
 * column clamped inside the map, weights not; rows clamped), in float32. OpenCV hands
 * float resizes to Intel IPP where it is built in, whose rounding differs in the last bits
 * (within 1e-5 on the goldens), so masks binarized at 0 agree but for logits that close to 0.
 */
object FloatResize {
    fun linear(values: FloatArray, height: Int, width: Int, outHeight: Int, outWidth: Int): FloatArray {
        if (values.size != height * width) {
            throw InputException("A ${height}x$width map needs ${height * width} values; got ${values.size}.")
        }
        if (outHeight == height && outWidth == width) return values.copyOf()
        val (xs, ax) = taps(width, outWidth, clamp = true)
        val (ys, ay) = taps(height, outHeight, clamp = false)
        val rows = Array(height) { y ->
            FloatArray(outWidth) { x ->
                val x1 = min(xs[x] + 1, width - 1)
                values[y * width + xs[x]] * (1f - ax[x]) + values[y * width + x1] * ax[x]
            }
        }
        val out = FloatArray(outHeight * outWidth)
        for (y in 0 until outHeight) {
            val r0 = rows[ys[y].coerceIn(0, height - 1)]
            val r1 = rows[(ys[y] + 1).coerceIn(0, height - 1)]
            val b1 = ay[y]
            val b0 = 1f - b1
            for (x in 0 until outWidth) out[y * outWidth + x] = r0[x] * b0 + r1[x] * b1
        }
        return out
    }

    private fun taps(source: Int, target: Int, clamp: Boolean): Pair<IntArray, FloatArray> {
        val scale = 1.0 / (target.toDouble() / source)
        val index = IntArray(target)
        val weight = FloatArray(target)
        for (d in 0 until target) {
            var f = ((d + 0.5) * scale - 0.5).toFloat()
            var s = floor(f).toInt()
            f -= s.toFloat()
            if (clamp && s < 0) { f = 0f; s = 0 }
            if (clamp && s >= source - 1) { f = 0f; s = source - 1 }
            index[d] = s
            weight[d] = f
        }
        return index to weight
    }
}

/**
 * A mask tinted over its photo with the colour and weights of `edge-backbones segment`'s
 * picture (runtime/sam_cli.py: 0.45 photo + 0.55 tint in float32, truncated to uint8). The
 * app draws the mask's outline and the prompt's marks over it itself.
 */
object MaskOverlay {
    /** RGB of the tint (sam_cli's BGR (255, 144, 30)). */
    val TINT = intArrayOf(30, 144, 255)
    const val KEEP = 0.45f
    const val PAINT = 0.55f

    fun draw(image: RgbImage, mask: BooleanArray): RgbImage {
        if (mask.size != image.height * image.width) {
            throw InputException(
                "A mask of ${mask.size} pixels for a ${image.height}x${image.width} photo; pass the " +
                    "mask at the photo's size (SamMasks.masks).",
            )
        }
        val pixels = image.pixels.copyOf()
        for (p in mask.indices) {
            if (!mask[p]) continue
            for (c in 0 until 3) {
                val photo = (image.pixels[3 * p + c].toInt() and 0xFF).toFloat()
                pixels[3 * p + c] = (KEEP * photo + PAINT * TINT[c].toFloat()).toInt().toByte()
            }
        }
        return RgbImage(image.height, image.width, pixels)
    }
}
