//! An adversary beside qspool: another user's links, FIFOs and junk in the spool, a spool root
//! qspool should not trust, hostile command lines, and the modes of what qspool creates.
