package io.github.edgebackbones.core

/** What a bundled artifact is, from its sidecar's task kind: which screen runs it. */
enum class ArtifactRole {
    /** A feature pyramid (no task): statistics and principal components. */
    BACKBONE,

    /** A segmenter: the class-map overlay and legend. */
    SEGMENTER,

    /** SAM's image encoder: run once per photo, then taps go to its decoder. */
    SAM_ENCODER,

    /** SAM's prompt decoder: run per tap. */
    SAM_DECODER,
}

/** A SAM encoder and the decoder exported with it, by asset name. */
data class SamPair(val encoder: String, val decoder: String)

/** The app's assets sorted by role, from their sidecars alone (no model is opened). */
object Bundle {
    fun roleOf(sidecarText: String): ArtifactRole {
        val task = Json.parse(sidecarText).asObject("the sidecar")["task"] as? Map<*, *>
        return when (val kind = task?.get("kind")) {
            null -> ArtifactRole.BACKBONE
            Segmentation.KIND -> ArtifactRole.SEGMENTER
            "sam_encoder" -> ArtifactRole.SAM_ENCODER
            SamDecoderMetadata.KIND -> ArtifactRole.SAM_DECODER
            else -> throw MetadataException(
                "A sidecar with task kind ${quote(kind)}, which this app does not show; bundle a backbone, " +
                    "a segmenter or a SAM encoder and decoder.",
            )
        }
    }

    /**
     * Every encoder with a decoder from the same checkpoint and image size. [sidecars] maps a
     * .tflite asset name to its sidecar's text.
     */
    fun samPairs(sidecars: Map<String, String>): List<SamPair> {
        fun tie(text: String): List<Any?> {
            val task = Json.parse(text).asObject("the sidecar")["task"] as Map<*, *>
            return listOf(task["checkpoint_sha256"], task["image_size"], task["embedding_shape"])
        }
        val byRole = sidecars.entries.groupBy { roleOf(it.value) }
        val decoders = byRole[ArtifactRole.SAM_DECODER].orEmpty().map { it.key to tie(it.value) }
        return byRole[ArtifactRole.SAM_ENCODER].orEmpty().sortedBy { it.key }.mapNotNull { encoder ->
            val key = tie(encoder.value)
            decoders.sortedBy { it.first }.firstOrNull { it.second == key }?.let { SamPair(encoder.key, it.first) }
        }
    }
}
