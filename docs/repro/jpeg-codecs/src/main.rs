//! Decoding the bench's JPEGs and encoding 256×256 crops, one thread: the pure-Rust
//! codecs alexnet-prep uses against libjpeg-turbo (what PIL uses).

use std::{error::Error, time::Instant};

fn rate(
    count: usize,
    mut job: impl FnMut() -> Result<(), Box<dyn Error>>,
) -> Result<f64, Box<dyn Error>> {
    job()?;
    let mut rates = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        job()?;
        rates.push(count as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates[2])
}

fn main() -> Result<(), Box<dyn Error>> {
    let folder = std::env::args()
        .nth(1)
        .ok_or("usage: jpeg-codecs-repro DIR")?;
    let mut paths: Vec<_> = std::fs::read_dir(&folder)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    let blobs: Vec<Vec<u8>> = paths.iter().map(std::fs::read).collect::<Result<_, _>>()?;

    let zune = rate(blobs.len(), || {
        for blob in &blobs {
            let options = zune_core::options::DecoderOptions::default()
                .jpeg_set_out_colorspace(zune_core::colorspace::ColorSpace::RGB);
            let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
                zune_core::bytestream::ZCursor::new(blob),
                options,
            );
            std::hint::black_box(decoder.decode()?);
        }
        Ok(())
    })?;
    let turbo = rate(blobs.len(), || {
        for blob in &blobs {
            std::hint::black_box(turbojpeg::decompress(blob, turbojpeg::PixelFormat::RGB)?);
        }
        Ok(())
    })?;
    println!("decode, images/s: zune-jpeg {zune:.0}, libjpeg-turbo {turbo:.0}");

    // A 256×256 crop of the first image that is at least that large.
    let source = blobs
        .iter()
        .map(|blob| turbojpeg::decompress(blob, turbojpeg::PixelFormat::RGB))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find(|image| image.width >= 256 && image.height >= 256)
        .ok_or("no image of at least 256×256")?;
    let mut pixels = vec![0u8; 256 * 256 * 3];
    for (y, row) in pixels.chunks_exact_mut(256 * 3).enumerate() {
        row.copy_from_slice(&source.pixels[y * source.pitch..y * source.pitch + 256 * 3]);
    }
    for quality in [90u8, 95] {
        let encoder = rate(500, || {
            for _ in 0..500 {
                let mut out = Vec::new();
                jpeg_encoder::Encoder::new(&mut out, quality).encode(
                    &pixels,
                    256,
                    256,
                    jpeg_encoder::ColorType::Rgb,
                )?;
                std::hint::black_box(out);
            }
            Ok(())
        })?;
        let mut compressor = turbojpeg::Compressor::new()?;
        compressor.set_quality(i32::from(quality));
        compressor.set_subsamp(turbojpeg::Subsamp::Sub2x2);
        let turbo = rate(500, || {
            for _ in 0..500 {
                let image = turbojpeg::Image {
                    pixels: pixels.as_slice(),
                    width: 256,
                    pitch: 256 * 3,
                    height: 256,
                    format: turbojpeg::PixelFormat::RGB,
                };
                std::hint::black_box(compressor.compress_to_vec(image)?);
            }
            Ok(())
        })?;
        println!(
            "encode 256x256 q{quality}, images/s: jpeg-encoder {encoder:.0}, libjpeg-turbo {turbo:.0}"
        );
    }
    Ok(())
}
