//! Reads any numeric column (integers, floats, `numeric`, `oid`, `bool` as
//! 0/1) of a custom query as `f64` from PostgreSQL's binary format.

use std::error::Error;

use tokio_postgres::types::{FromSql, Type};

/// A numeric column value as `f64`; `numeric` NaN and infinities included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Number(pub(crate) f64);

type BoxError = Box<dyn Error + Sync + Send>;

fn array<const N: usize>(raw: &[u8]) -> Result<[u8; N], BoxError> {
    raw.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", raw.len()).into())
}

/// `numeric`: i16 digit count, i16 weight, u16 sign, u16 scale, then base
/// 10000 digits, the first of which is multiplied by 10000^weight.
fn numeric(raw: &[u8]) -> Result<f64, BoxError> {
    let word = |i: usize| -> Result<u16, BoxError> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".into())
    };
    let count = usize::from(word(0)?);
    let weight = i32::from(word(1)?.cast_signed());
    let value = match word(2)? {
        0xC000 => return Ok(f64::NAN),
        0xD000 => return Ok(f64::INFINITY),
        0xF000 => return Ok(f64::NEG_INFINITY),
        sign => {
            let mut sum = 0.0;
            for i in 0..count {
                let exponent = weight - i32::try_from(i).map_err(|_| "numeric too long")?;
                sum += f64::from(word(4 + i)?) * 10_000f64.powi(exponent);
            }
            if sign == 0x4000 { -sum } else { sum }
        }
    };
    Ok(value)
}

const TYPES: [Type; 8] = [
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::OID,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::NUMERIC,
];

impl<'a> FromSql<'a> for Number {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Number, BoxError> {
        let value = if *ty == Type::BOOL {
            f64::from(u8::from(array::<1>(raw)?[0] != 0))
        } else if *ty == Type::INT2 {
            f64::from(i16::from_be_bytes(array(raw)?))
        } else if *ty == Type::INT4 {
            f64::from(i32::from_be_bytes(array(raw)?))
        } else if *ty == Type::INT8 {
            // Precision beyond 2^53 is lost, as in any gauge.
            i64::from_be_bytes(array(raw)?) as f64
        } else if *ty == Type::OID {
            f64::from(u32::from_be_bytes(array(raw)?))
        } else if *ty == Type::FLOAT4 {
            f64::from(f32::from_be_bytes(array(raw)?))
        } else if *ty == Type::FLOAT8 {
            f64::from_be_bytes(array(raw)?)
        } else {
            numeric(raw)?
        };
        Ok(Number(value))
    }

    fn accepts(ty: &Type) -> bool {
        TYPES.contains(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(count: u16, weight: i16, sign: u16, digits: &[u16]) -> Vec<u8> {
        let mut raw = Vec::new();
        for word in [count, weight.cast_unsigned(), sign, 0]
            .into_iter()
            .chain(digits.iter().copied())
        {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        raw
    }

    #[test]
    fn decodes_numeric() {
        // 12345.678 = 1·10000 + 2345 + 6780/10000
        let raw = encode(3, 1, 0, &[1, 2345, 6780]);
        assert!((numeric(&raw).unwrap() - 12345.678).abs() < 1e-9);
        let raw = encode(1, -1, 0x4000, &[5000]);
        assert_eq!(numeric(&raw).unwrap(), -0.5);
        assert_eq!(numeric(&encode(0, 0, 0, &[])).unwrap(), 0.0);
        assert!(numeric(&encode(0, 0, 0xC000, &[])).unwrap().is_nan());
        assert!(numeric(&[0, 1]).is_err());
    }

    #[test]
    fn decodes_fixed_width_types() {
        let n = |ty: &Type, raw: &[u8]| Number::from_sql(ty, raw).unwrap().0;
        assert_eq!(n(&Type::INT4, &(-7i32).to_be_bytes()), -7.0);
        assert_eq!(n(&Type::INT8, &42i64.to_be_bytes()), 42.0);
        assert_eq!(n(&Type::FLOAT8, &1.5f64.to_be_bytes()), 1.5);
        assert_eq!(n(&Type::BOOL, &[1]), 1.0);
        assert!(Number::from_sql(&Type::INT4, &[0, 1]).is_err());
        assert!(!Number::accepts(&Type::TEXT));
    }
}
