package io.github.edgebackbones.core

/** A segmenter's class map: [ids] row-major, height x width. */
class ClassMap(val height: Int, val width: Int, val ids: IntArray)

/**
 * What an exported segmenter (sidecar task kind "segmentation") returns, by output name:
 * `classes` (1, H, W) uint8 ids when the graph computes them, `logits` (1, h, w, C) always.
 * When the graph leaves the class map to the host (int16-activation artifacts have no
 * int16 ARG_MAX), it is computed here as runtime/class_map.py does.
 */
object Segmentation {
    const val KIND = "segmentation"
    const val CLASSES = "classes"
    const val LOGITS = "logits"

    /** Throws unless [metadata] is a segmenter's: the app then shows the class map. */
    fun require(metadata: ModelMetadata) {
        if (metadata.task?.kind != KIND || metadata.levels.none { it.name == LOGITS }) {
            throw MetadataException(
                "${metadata.modelName} (${metadata.mode}) is not a segmenter: its sidecar has task kind " +
                    "${quote(metadata.task?.kind)} and outputs ${metadata.levels.map { it.name }}. Export a " +
                    "SegFormer checkpoint (with its decode head) for the overlay.",
            )
        }
    }

    /** The class names the legend shows (sidecar task.class_names), or none. */
    fun classNames(metadata: ModelMetadata): List<String> = metadata.task?.classNames ?: emptyList()

    /** The class map from the model's outputs by name: `classes` if present, else from `logits`. */
    fun classMap(outputs: Map<String, RawTensor>, metadata: ModelMetadata): ClassMap {
        require(metadata)
        val classes = metadata.levels.firstOrNull { it.name == CLASSES }
        if (classes != null) {
            val raw = outputs[CLASSES] ?: throw missing(outputs, metadata)
            if (raw !is RawTensor.Bytes || classes.dtype != DType.UINT8 || raw.size != classes.elementCount) {
                throw InputException(
                    "Output classes should be ${classes.elementCount} uint8 ids (shape ${classes.shape}); " +
                        "the bundled sidecar belongs to another export.",
                )
            }
            return ClassMap(classes.shape[1], classes.shape[2], IntArray(raw.size) { raw.values[it].toInt() and 0xFF })
        }
        val level = metadata.level(LOGITS)
        val logits = Tensors.dequantize(outputs[LOGITS] ?: throw missing(outputs, metadata), level)
        val classesAt = (metadata.raw["task"] as? Map<*, *>)?.get("classes_at") ?: "logits"
        if (classesAt != "logits") {
            throw MetadataException(
                "This segmenter's graph leaves a class map at the input's size to the host " +
                    "(classes_at=${quote(classesAt)}); the app computes it at the logits' size only. " +
                    "Export a target whose graph outputs classes (cpu, gpu, npu_int8).",
            )
        }
        return argmax(logits)
    }

    /** Per pixel the class with the largest logit (the first on ties, as numpy); one class: logit > 0. */
    fun argmax(logits: FeatureMap): ClassMap {
        val c = logits.channels
        val pixels = logits.height * logits.width
        val ids = IntArray(pixels) { p ->
            val base = p * c
            if (c == 1) {
                if (logits.values[base] > 0f) 1 else 0
            } else {
                var best = 0
                for (k in 1 until c) if (logits.values[base + k] > logits.values[base + best]) best = k
                best
            }
        }
        return ClassMap(logits.height, logits.width, ids)
    }

    /** The photo with the class map blended over it and the legend rows, as `edge-backbones run --overlay`. */
    fun overlay(image: RgbImage, map: ClassMap, metadata: ModelMetadata): ClassOverlay =
        ClassMapOverlay.overlay(image, map.ids, map.height, map.width, classNames(metadata))

    private fun missing(outputs: Map<String, RawTensor>, metadata: ModelMetadata) = InputException(
        "The model returned outputs ${outputs.keys.sorted()} but its metadata lists " +
            "${metadata.levels.map { it.name }}. Bundle the sidecar exported with this .tflite.",
    )
}
