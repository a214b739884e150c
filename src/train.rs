//! Training and evaluation of the emotion networks on FER-2013.
