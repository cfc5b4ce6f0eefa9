// SVG documents (training reports' curves and confusion matrices) rasterised by libvips.
import sharp from 'sharp';

/** Rasterises an SVG document to PNG. */
export function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png().toBuffer();
}
