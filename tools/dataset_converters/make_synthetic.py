"""Write the embedded synthetic smoke-test set (PNG + COCO instance JSON with RLE masks).

Example:
    python tools/dataset_converters/make_synthetic.py --out data/synthetic
"""
import argparse

from a2bis_mm.datasets import generate_synthetic_coco


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/synthetic', help='output folder')
    parser.add_argument('--num-train', type=int, default=24, help='training images')
    parser.add_argument('--num-val', type=int, default=8, help='validation images')
    parser.add_argument('--size', type=int, default=256, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    args = parser.parse_args()
    files = generate_synthetic_coco(args.out, args.num_train, args.num_val, args.size, args.seed)
    print(f'synthetic set ready: {files["train"]} ({args.num_train} images), '
          f'{files["val"]} ({args.num_val} images)')


if __name__ == '__main__':
    main()
