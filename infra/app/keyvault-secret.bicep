// One Key Vault secret (a module, so that callers can create it conditionally).
param keyVaultName string
param name string
@secure()
param value string
param contentType string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: name
  properties: {
    value: value
    contentType: contentType
  }
}

output name string = secret.name
