// The wallet's customers are known by their MSISDN: every module that uses the wallet speaks it.
@_exported import Basics
