from .a2b_decoder import DECODERS, A2BDecoder, A2BPaperDecoder, build_decoder
from .ideal_maps import ideal_maps
from .nms import rotated_nms
from .vote_decoder import A2BVoteDecoder, prob_iou

__all__ = [
    'A2BDecoder', 'A2BPaperDecoder', 'A2BVoteDecoder', 'DECODERS', 'build_decoder', 'ideal_maps', 'prob_iou',
    'rotated_nms'
]
